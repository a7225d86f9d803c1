"""Reward presets: named weightings of the reward terms.

A preset's reward is the weighted sum over ALL terms (a term the preset does not use has weight 0),
so every term is still computed and reported. Weights can be overridden per term.

A preset also names the rules its terms are computed with: ``upstream`` reproduces Seg-Zero's and
VisionReasoner's training rewards exactly, quirks included (:mod:`segzero_env.rewards.upstream`);
``robust`` reads the parsed answer (:mod:`segzero_env.rewards.terms`). ``docs/rewards.md`` lists
every difference.

======================  ===============================================================  ========  =======
preset                  weights                                                          rules     range
======================  ===============================================================  ========  =======
mask-iou (default)      think_format 1, answer_format 1, mask_iou 1                      robust    0 .. 3
seg-zero                think_format 1, answer_format 1, box_iou 1, box_l1 1, points 1  upstream  0 .. 5
seg-zero-robust         the same weights as seg-zero                                     robust    0 .. 5
vision-reasoner         vr_format 1, vr_accuracy 1, non_repeat 1                         upstream  0 .. 7
vision-reasoner-robust  the same weights as vision-reasoner                              robust    0 .. 7
======================  ===============================================================  ========  =======

>>> preset = make_preset("mask-iou", {"mask_iou": 2.0})
>>> preset.reward_range
(0.0, 4.0)
>>> make_preset("mask-iou", {"iou": 1.0})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown reward term 'iou' in the weights; valid terms: think_format, answer_format, box_iou, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from segzero_env.arguments import finite_number
from segzero_env.rewards.terms import RULES, TERM_NAMES, TERM_RANGES

DEFAULT_PRESET = "mask-iou"


@dataclass(frozen=True)
class RewardPreset:
    """A named weighting of the reward terms.

    Attributes:
        name: Preset name.
        weights: A weight for every term of :data:`~segzero_env.rewards.terms.TERM_NAMES` (0 for unused ones).
        description: One line saying what the preset rewards.
        rules: The rule set the terms are computed with, one of :data:`~segzero_env.rewards.terms.RULES`.
    """

    name: str
    weights: Mapping[str, float]
    description: str = ""
    rules: str = "robust"
    _active: tuple[tuple[str, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rules not in RULES:
            raise ValueError(f"unknown reward rules {self.rules!r}; valid rules: {', '.join(RULES)}")
        full = {name: 0.0 for name in TERM_NAMES}
        for name, weight in self.weights.items():
            if name not in TERM_RANGES:
                raise ValueError(f"unknown reward term {name!r} in the weights; valid terms: {', '.join(TERM_NAMES)}")
            full[name] = finite_number(f"reward_weights[{name!r}]", weight)
        object.__setattr__(self, "weights", MappingProxyType(full))
        object.__setattr__(self, "_active", tuple((n, w) for n, w in full.items() if w != 0.0))

    def combine(self, terms: Mapping[str, float]) -> float:
        """Weighted sum of the terms.

        Args:
            terms: The output of :func:`~segzero_env.rewards.terms.compute_terms`.

        Raises:
            KeyError: If a term with a non-zero weight is missing.
        """
        total = 0.0
        for name, weight in self._active:
            total += weight * terms[name]
        return total

    @property
    def reward_range(self) -> tuple[float, float]:
        """``(lowest, highest)`` reward this preset can give (negative weights included)."""
        lo = hi = 0.0
        for name, weight in self._active:
            t_lo, t_hi = TERM_RANGES[name]
            lo += min(weight * t_lo, weight * t_hi)
            hi += max(weight * t_lo, weight * t_hi)
        return (lo, hi)


_SEG_ZERO_WEIGHTS = {"think_format": 1.0, "answer_format": 1.0, "box_iou": 1.0, "box_l1": 1.0, "points": 1.0}
_VISION_REASONER_WEIGHTS = {"vr_format": 1.0, "vr_accuracy": 1.0, "non_repeat": 1.0}

PRESETS: dict[str, RewardPreset] = {
    p.name: p
    for p in (
        RewardPreset(
            "mask-iou",
            {"think_format": 1.0, "answer_format": 1.0, "mask_iou": 1.0},
            "thinking format + strict answer format + continuous mask IoU of the segmenter's mask (0..3)",
        ),
        RewardPreset(
            "seg-zero",
            _SEG_ZERO_WEIGHTS,
            "Seg-Zero's training reward, exactly: formats, box IoU > 0.5, box L1 < 10 px, points (0..5)",
            "upstream",
        ),
        RewardPreset(
            "seg-zero-robust",
            _SEG_ZERO_WEIGHTS,
            "Seg-Zero's five terms on the parsed answer (JSON or Python literal, boxes normalised) (0..5)",
        ),
        RewardPreset(
            "vision-reasoner",
            _VISION_REASONER_WEIGHTS,
            "VisionReasoner's training reward, exactly: format 0-3, matched accuracy 0-3, non-repeat 0/1 (0..7)",
            "upstream",
        ),
        RewardPreset(
            "vision-reasoner-robust",
            _VISION_REASONER_WEIGHTS,
            "VisionReasoner's three terms on the parsed answer and the reasoning's sentences (0..7)",
        ),
    )
}
"""The built-in presets by name."""


def make_preset(name: str | RewardPreset = DEFAULT_PRESET, weights: Mapping[str, float] | None = None) -> RewardPreset:
    """Build a preset, optionally overriding some weights.

    Args:
        name: A built-in preset name (or a preset, whose weights are then overridden).
        weights: Per-term weights merged over the preset's (a term set to 0 is switched off).

    Returns:
        The preset.

    Raises:
        ValueError: If the name or a term is unknown, or a weight is not finite.
    """
    if isinstance(name, RewardPreset):
        base = name
    elif name in PRESETS:
        base = PRESETS[name]
    else:
        raise ValueError(f"unknown reward preset {name!r}; valid presets: {', '.join(PRESETS)}")
    if not weights:
        return base
    merged = dict(base.weights)
    for term, weight in weights.items():
        if term not in TERM_RANGES:
            raise ValueError(f"unknown reward term {term!r} in the weights; valid terms: {', '.join(TERM_NAMES)}")
        merged[term] = weight
    return RewardPreset(base.name, merged, base.description + " (weights overridden)", base.rules)

"""Segmentation metrics: gIoU and cIoU accumulated over samples.

Two definitions, named, because the literature uses both:

``"lisa"`` (default)
    Pixels where the ground truth is 255 (ignore) are removed from every count, the prediction's
    included. ``I = |P & G|``, ``U = |P | G|``. gIoU is the mean of ``I / U`` over samples, a sample
    with ``U == 0`` (both empty) scoring 1; cIoU is ``sum(I) / sum(U)``. No prediction (an unusable
    reply) is an empty mask.
``"seg-zero"``
    Ignore pixels count as target; samples with ``U == 0`` are skipped (not in gIoU's mean nor ``n``;
    ``n_skipped`` counts them).

With no sample scored, gIoU and cIoU are 0.0.

>>> gt = np.array([[1, 1, 255, 0]], dtype=np.uint8)
>>> acc = IoUAccumulator()
>>> acc.update(np.array([[1, 0, 1, 0]], dtype=bool), gt)
SampleIoU(intersection=1, union=2, iou=0.5)
>>> acc.update(None, np.zeros((1, 4), dtype=np.uint8)).iou
1.0
>>> acc.giou, acc.ciou, acc.n
(0.75, 0.5, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from segzero_env.geometry import IGNORE_VALUE, mask_iou

IoUDefinition = Literal["lisa", "seg-zero"]
DEFINITIONS: tuple[str, ...] = ("lisa", "seg-zero")


@dataclass(frozen=True)
class SampleIoU:
    """One sample's counts.

    Attributes:
        intersection: ``|P & G|`` in pixels.
        union: ``|P | G|`` in pixels.
        iou: ``I / U`` (1.0 when ``U == 0`` under LISA's rules, NaN when the Seg-Zero rules skip it).
    """

    intersection: int
    union: int
    iou: float


def _check_definition(definition: str) -> None:
    if definition not in DEFINITIONS:
        raise ValueError(f"unknown IoU definition {definition!r}; use one of {DEFINITIONS}")


def sample_iou(pred: np.ndarray | None, gt: np.ndarray, definition: IoUDefinition = "lisa") -> SampleIoU:
    """IoU of one prediction against one ground truth.

    Args:
        pred: ``H x W`` bool prediction, or ``None`` for no prediction (an empty mask).
        gt: ``H x W`` ground truth: uint8 0 / 1 / 255, or bool.
        definition: ``"lisa"`` or ``"seg-zero"`` (see the module docstring).

    Returns:
        The sample's intersection, union and IoU.

    >>> gt = np.array([[1, 255], [0, 0]], dtype=np.uint8)
    >>> pred = np.array([[1, 1], [0, 0]], dtype=bool)
    >>> sample_iou(pred, gt).iou, sample_iou(pred, gt, "seg-zero").iou
    (1.0, 1.0)
    >>> sample_iou(None, gt, "seg-zero")
    SampleIoU(intersection=0, union=2, iou=0.0)
    """
    _check_definition(definition)
    if gt.dtype == np.bool_:
        gt = gt.astype(np.uint8)
    if definition == "lisa":
        inter, union = mask_iou(pred, gt, ignore_value=IGNORE_VALUE)
        return SampleIoU(inter, union, 1.0 if union == 0 else inter / union)
    target = gt != 0
    if pred is None:
        inter, union = 0, int(np.count_nonzero(target))
    else:
        if pred.shape != gt.shape:
            raise ValueError(f"sample_iou: prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
        pred = pred.astype(bool, copy=False)
        inter = int(np.count_nonzero(pred & target))
        union = int(np.count_nonzero(pred | target))
    return SampleIoU(inter, union, float("nan") if union == 0 else inter / union)


class IoUAccumulator:
    """Running gIoU / cIoU over samples.

    Args:
        definition: ``"lisa"`` (default) or ``"seg-zero"``.
    """

    def __init__(self, definition: IoUDefinition = "lisa") -> None:
        _check_definition(definition)
        self.definition: IoUDefinition = definition
        self.sum_iou = 0.0
        self.sum_intersection = 0
        self.sum_union = 0
        self.n = 0
        """Samples scored."""
        self.n_skipped = 0
        """Samples skipped (``U == 0`` under the Seg-Zero rules)."""

    def update(self, pred: np.ndarray | None, gt: np.ndarray) -> SampleIoU:
        """Add one sample; returns its counts."""
        sample = sample_iou(pred, gt, self.definition)
        self.add(sample)
        return sample

    def add(self, sample: SampleIoU) -> None:
        """Add precomputed counts (as returned by :func:`sample_iou` with this definition)."""
        if sample.union == 0 and self.definition == "seg-zero":
            self.n_skipped += 1
            return
        self.sum_iou += sample.iou
        self.sum_intersection += sample.intersection
        self.sum_union += sample.union
        self.n += 1

    def merge(self, other: IoUAccumulator) -> IoUAccumulator:
        """Return a new accumulator holding both (for overall vs per-split reports).

        Raises:
            ValueError: If the two use different definitions.
        """
        if other.definition != self.definition:
            raise ValueError(
                f"cannot merge IoU accumulators of definitions {self.definition!r} and {other.definition!r}"
            )
        out = IoUAccumulator(self.definition)
        out.sum_iou = self.sum_iou + other.sum_iou
        out.sum_intersection = self.sum_intersection + other.sum_intersection
        out.sum_union = self.sum_union + other.sum_union
        out.n = self.n + other.n
        out.n_skipped = self.n_skipped + other.n_skipped
        return out

    __add__ = merge

    @property
    def giou(self) -> float:
        """Mean per-sample IoU (0.0 before any sample)."""
        return self.sum_iou / self.n if self.n else 0.0

    @property
    def ciou(self) -> float:
        """Cumulative IoU: total intersection over total union (0.0 when the union is empty)."""
        return self.sum_intersection / self.sum_union if self.sum_union else 0.0

    def summary(self) -> dict[str, float | int | str]:
        """``{"giou", "ciou", "n", "n_skipped", "definition"}``."""
        return {
            "giou": self.giou,
            "ciou": self.ciou,
            "n": self.n,
            "n_skipped": self.n_skipped,
            "definition": self.definition,
        }

    def __repr__(self) -> str:
        return f"IoUAccumulator(definition={self.definition!r}, n={self.n}, giou={self.giou:.4f}, ciou={self.ciou:.4f})"

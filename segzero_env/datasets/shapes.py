"""ReasonSegShapes: procedurally drawn scenes of coloured shapes with queries that need reasoning.

The embedded default dataset: no files, no downloads. Sample ``i`` of a split is drawn on access from a
random generator seeded by ``(seed, split, level, i)``, so the same arguments always give the same
arrays, nothing is held in memory, and the train / val / test splits come from separate seed streams.
Image sizes vary per sample (width 320-640, height 240-480, never square) so resizing matters.

Every query is generated from a structured form and kept only when an explicit resolver proves it picks
exactly one object under both a strict and a lenient reading of vague words (see
:mod:`segzero_env.datasets.shapes_resolver`); level 4 adds queries proven to pick every object of a class,
or none. The mask is the targets' visible pixels, taken from the same rasterisation that painted the
image: values 0 (background) and 1 (target), no ignore pixels (all zero when there is no target).
Level 3 softens the finished image with a 5x5 blur and noise; the mask stays the exact drawn region.

Levels (``level=``):

- **0**: one large object on a plain background; the query names its colour, shape or both
  ("the red circle"). Localisation only: the easiest RL task.
- **1**: two large objects with different colours on a plain background; the shortest attribute query
  that tells them apart ("the triangle", "the blue shape").
- **2**: three to five objects of three sizes, all nine shapes, slight rotation, a gradient background
  with mild noise and shaded surfaces. Queries: attributes, superlatives ("the leftmost circle", "the
  largest shape", "the shape with the most corners"), spatial relations ("the square to the left of
  the red star"), distances ("the shape closest to the green hexagon") and functions ("the shape that
  could roll").
- **3**: six to nine objects drawn from a few colours and shapes (so distractors share attributes),
  up to 30 degree rotation, partial occlusion (each object at least 60% visible, overlapping objects
  never share a colour), a cloudy colourful background with clutter lines in object colours, patterned
  and slightly translucent surfaces (80-92% opaque, over the bare background), blur and noise.
  Queries add ordinals ("the second circle from the left"), negation ("the circle that is
  not red"), counting ("the shape whose colour appears only once") and long paraphrases.
- **4**: level 2's scenes with colours and shapes repeated (two or three of each), and three kinds of
  query: one object by its attributes (40%), every object of a class ("every red shape", 30%; the
  mask is their union) and an object that is not there ("the blue star" when no star is blue, 30%;
  the mask is empty and ``meta["no_target"]`` is True). The right answer to a no-target query is the
  empty one (see the ``no-target`` handling of the answer protocol).

Each query is a short phrase or a long sentence (``query_kind`` ``"short"`` / ``"long"``, about half
each). ``Sample.meta`` holds ``level``, ``objects`` (dicts with ``shape``, ``colour``, ``size``,
``centre``, ``bbox`` of the visible part, ``extent``, ``area``, ``visible_area``, ...), ``target_index``
(``None`` unless exactly one target), ``target_indices``, ``n_targets``, ``no_target``, ``gt_boxes`` (the
targets' visible boxes), ``query_struct``, ``query_style`` and ``seed``; ``resolve(meta["query_struct"],
meta["objects"], width, height)`` re-checks the answer.

>>> ds = load_shapes(split="val", size=3, level=2)
>>> len(ds), ds.sample_ids[1]
(3, 'shapes-L2-val-000001')
>>> sample = ds[1]
>>> sample.image.dtype, sample.mask.max(), sample.query_kind in ("short", "long")
(dtype('uint8'), np.uint8(1), True)
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

from segzero_env.datasets.shapes_levels import LEVELS, LevelConfig
from segzero_env.datasets.shapes_queries import generate_query, query_targets
from segzero_env.datasets.shapes_scene import render_scene
from segzero_env.datasets.shapes_text import render_query
from segzero_env.types import Sample

DEFAULT_SIZES: dict[str, int] = {"train": 100_000, "val": 500, "test": 1_000}
"""Samples per split when ``size`` is not given."""

WIDTH_RANGE = (320, 640)
HEIGHT_RANGE = (240, 480)
_SCENE_TRIES = 50


def _sample_rng(seed: int, split: str, level: int, index: int) -> np.random.Generator:
    # crc32 of the split name keeps the streams stable across Python runs (str hash is salted).
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(split.encode()), level, index]))


class _SampleIds(Sequence[str]):
    """Sample ids computed on demand, so a 100,000-sample split costs no memory."""

    def __init__(self, prefix: str, length: int) -> None:
        self._prefix = prefix
        self._length = length

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"sample index {index} out of range for {self._length} samples")
        return f"{self._prefix}{index:06d}"

    def __iter__(self) -> Iterator[str]:
        return (f"{self._prefix}{i:06d}" for i in range(self._length))


class ShapesDataset:
    """The synthetic ReasonSegShapes set for one split and level (see the module docstring).

    Attributes:
        name: Always ``"shapes"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        has_masks: Always True.
        level: Difficulty level 0-4.
        seed: Base seed; different seeds give different datasets (and ids carry it when non-zero).
    """

    name = "shapes"
    has_masks = True

    def __init__(self, split: str = "train", size: int | None = None, level: int = 1, seed: int = 0) -> None:
        if split not in DEFAULT_SIZES:
            raise ValueError(f"unknown split {split!r} for the shapes dataset; use one of {sorted(DEFAULT_SIZES)}")
        if level not in LEVELS:
            raise ValueError(
                f"level must be one of {sorted(LEVELS)} (0 easiest, 3 hardest, 4 several or no targets), got {level!r}"
            )
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"size must be a positive int or None (default {DEFAULT_SIZES[split]}), got {size!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.split = split
        self.level = level
        self.seed = seed
        self.config: LevelConfig = LEVELS[level]
        self._length = DEFAULT_SIZES[split] if size is None else size
        seed_part = f"s{seed}-" if seed else ""
        self._prefix = f"shapes-{seed_part}L{level}-{split}-"
        self._ids = _SampleIds(self._prefix, self._length)

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"ShapesDataset(split={self.split!r}, size={self._length}, level={self.level}, seed={self.seed})"

    @property
    def sample_ids(self) -> Sequence[str]:
        """Every sample id (``shapes-L{level}-{split}-{index:06d}``, ``shapes-s{seed}-L...`` if seeded)."""
        return self._ids

    def index_of(self, sample_id: str) -> int:
        """Index of ``sample_id``; raises ``KeyError`` naming the id when it is not in this split."""
        if isinstance(sample_id, str) and sample_id.startswith(self._prefix):
            digits = sample_id[len(self._prefix) :]
            if (
                digits.isdigit()
                and len(digits) >= 6
                and int(digits) < self._length
                and self._ids[int(digits)] == sample_id
            ):
                return int(digits)
        raise KeyError(f"sample id {sample_id!r} is not in {self!r}; ids look like {self._prefix}000000")

    def __getitem__(self, index: int) -> Sample:
        """Draw sample ``index`` (negative indices count from the end)."""
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"sample index must be an int, got {type(index).__name__}")
        index = int(index)
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"sample index {index} out of range for {self!r}")
        return self._generate(index)

    def _generate(self, index: int) -> Sample:
        rng = _sample_rng(self.seed, self.split, self.level, index)
        width = int(rng.integers(WIDTH_RANGE[0], WIDTH_RANGE[1] + 1))
        height = int(rng.integers(HEIGHT_RANGE[0], HEIGHT_RANGE[1] + 1))
        if height == width:
            height -= 1
        for _ in range(_SCENE_TRIES):
            scene = render_scene(rng, self.config, height, width)
            if scene is None:
                continue
            found = generate_query(rng, scene.objects, width, height, self.config)
            if found is None:
                continue
            query_struct, target, style = found
            targets = query_targets(query_struct, scene.objects, width, height)
            long = bool(rng.random() < self.config.long_prob)
            meta: dict[str, Any] = {
                "level": self.level,
                "seed": self.seed,
                "objects": scene.objects,
                "target_index": targets[0] if len(targets) == 1 else None,
                "target_indices": targets,
                "n_targets": len(targets),
                "no_target": not targets,
                "gt_boxes": [[float(v) for v in scene.objects[t]["bbox"]] for t in targets],
                "query_struct": query_struct,
                "query_style": style,
            }
            mask = np.zeros((height, width), dtype=np.uint8)
            for t in targets:
                mask |= scene.mask_of(t)
            return Sample(
                sample_id=self._ids[index],
                image=scene.image,
                query=render_query(query_struct, rng, long, n_objects=len(scene.objects)),
                mask=mask,
                query_kind="long" if long else "short",
                meta=meta,
            )
        raise RuntimeError(  # never seen in practice: every level's scenes usually succeed on the first try
            f"could not draw a valid scene for {self._ids[index]} in {_SCENE_TRIES} tries"
        )


def load_shapes(
    root: str | None = None,
    split: str = "train",
    size: int | None = None,
    level: int = 1,
    seed: int = 0,
    **kwargs: Any,
) -> ShapesDataset:
    """Open the synthetic shapes set (registered as dataset ``"shapes"``).

    Args:
        root: Ignored (nothing is read from disk); accepted so every loader takes the same arguments.
        split: ``"train"`` (100,000 samples by default), ``"val"`` (500) or ``"test"`` (1,000).
        size: Number of samples instead of the split's default.
        level: Difficulty 0 (one object) to 3 (many objects, texture, occlusion), or 4 (several or no
            targets); see the module docstring.
        seed: Base seed; 0 is the published set.
        **kwargs: Not used; any key given raises ``TypeError`` naming it, so typos do not pass silently.

    Returns:
        A :class:`ShapesDataset`.
    """
    if kwargs:
        raise TypeError(
            f"load_shapes got unexpected argument(s) {sorted(kwargs)}; accepted: root, split, size, level, seed"
        )
    return ShapesDataset(split=split, size=size, level=level, seed=seed)

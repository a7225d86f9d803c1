"""Per-episode state shared by the single env and the group vector env: the sample seen in both frames."""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np

from segzero_env.geometry import mask_to_box, mask_to_points
from segzero_env.types import Box, ObjectAnswer, Point, Sample

QUERY_CHARSET = "".join(c for c in string.printable if c not in "\x0b\x0c")
"""Characters the observation's ``query`` may hold: printable ASCII, space, tab, newline, carriage return."""

_QUERY_CHARSET_SET = frozenset(QUERY_CHARSET)

MAX_IMAGE_SIZE = 4096
"""Largest observation side: a 4096 x 4096 image is already 50 MB per reset (20000 took 8 GB and 19 s)."""


def sanitize_query(query: str, max_length: int) -> str:
    """Fold ``query`` into :data:`QUERY_CHARSET` (accents stripped, other characters dropped), truncated.

    The raw query stays available in ``info["query"]``; only the observation is folded, so it
    always lies inside the observation space.
    """
    folded = unicodedata.normalize("NFKD", query)
    return "".join(c for c in folded if c in _QUERY_CHARSET_SET)[:max_length]


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size x size`` without keeping the aspect ratio (area filter when shrinking)."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return np.ascontiguousarray(image, dtype=np.uint8)
    shrinking = size * size < height * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation).astype(np.uint8, copy=False)


@dataclass(frozen=True)
class Episode:
    """A sample prepared for scoring.

    Attributes:
        sample: The dataset sample (original frame).
        image_size: ``S``, the side of the square observation frame.
        image_obs: ``S x S x 3`` uint8 observation image.
        query_obs: Query folded into the observation charset.
        gt_box: Ground-truth box in the ``S`` frame (from the source, else the mask extent).
        gt_points: Ground-truth points in the ``S`` frame (from the source, else distance-transform maxima).
        no_target: The query names nothing in the image (``sample.meta["no_target"]``); the mask is empty.
        gt_objects: One object per target (``S`` frame, two points each) when the sample has several
            (``sample.meta["gt_boxes"]``), else ``None`` (the single ``gt_box`` / ``gt_points``).
    """

    sample: Sample
    image_size: int
    image_obs: np.ndarray
    query_obs: str
    gt_box: Box | None
    gt_points: tuple[Point, ...] | None
    no_target: bool = False
    gt_objects: tuple[ObjectAnswer, ...] | None = None

    @property
    def scale(self) -> tuple[float, float]:
        """``(W / S, H / S)``: multiply an ``S``-frame coordinate by these to reach the original frame."""
        return self.sample.width / self.image_size, self.sample.height / self.image_size


def _to_obs_frame_box(box: Box, sx: float, sy: float) -> Box:
    return (box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy)


def _target_objects(sample: Sample, sx: float, sy: float) -> tuple[ObjectAnswer, ...] | None:
    """Each target's box and two points (inside its box) in the ``S`` frame, for samples with several targets."""
    boxes = sample.meta.get("gt_boxes") or ()
    if len(boxes) < 2 or sample.mask is None:
        return None
    target = sample.mask == 1
    objects = []
    for x1, y1, x2, y2 in boxes:
        part = np.zeros_like(target)
        part[max(int(y1), 0) : int(y2) + 1, max(int(x1), 0) : int(x2) + 1] = True
        part &= target
        points = mask_to_points(part, n=2) if part.any() else ()
        box = _to_obs_frame_box((float(x1), float(y1), float(x2), float(y2)), sx, sy)
        objects.append(ObjectAnswer(box=box, points=tuple((x / sx, y / sy) for x, y in points)))
    return tuple(objects)


def make_episode(sample: Sample, image_size: int, max_query_length: int) -> Episode:
    """Resize the image, fold the query, and place the ground-truth box and points in the ``S`` frame."""
    sx, sy = sample.width / image_size, sample.height / image_size
    gt_box = sample.gt_box
    gt_points = sample.gt_points
    if sample.mask is not None:
        target = sample.mask == 1
        if gt_box is None:
            gt_box = mask_to_box(target)
        if gt_points is None and target.any():
            gt_points = mask_to_points(target, n=2)
    return Episode(
        sample=sample,
        image_size=image_size,
        image_obs=resize_image(sample.image, image_size),
        query_obs=sanitize_query(sample.query, max_query_length),
        gt_box=None if gt_box is None else _to_obs_frame_box(gt_box, sx, sy),
        gt_points=None if not gt_points else tuple((x / sx, y / sy) for x, y in gt_points),
        no_target=bool(sample.meta.get("no_target", False)),
        gt_objects=_target_objects(sample, sx, sy),
    )

"""Prompt cleaning shared by every backend: one documented rule set for degenerate prompts.

Rules (original image frame, ``W x H`` image, pixel-inclusive coordinates ``0 .. W-1``):

- A box with a non-finite coordinate is dropped. Corners are sorted (``x1 <= x2``, ``y1 <= y2``).
  A box that does not overlap ``[0, W-1] x [0, H-1]`` at all is dropped; one that overlaps is
  clipped to it. A zero-area box (a line or a point) is kept: each backend says what it does.
- Points with a non-finite coordinate are dropped (with their labels); points outside the image
  are clipped to its border. Labels must be 1 (foreground) or 0 (background).
- ``mask_input`` must be ``256 x 256`` (or ``1 x 256 x 256``) logits; backends that cannot use it
  ignore it.
- A prompt left with no box and no points is *empty*: every backend returns an empty mask for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segzero_env.types import Prompt

MASK_INPUT_SIZE = 256
"""Side of the low-resolution mask logits SAM2 takes as ``mask_input`` and returns."""


@dataclass(frozen=True)
class CleanPrompt:
    """A prompt after the module's rules: finite, ordered, inside the image.

    Attributes:
        box: ``(4,)`` float64 ``x1, y1, x2, y2`` or ``None``.
        points: ``N x 2`` float64 ``(x, y)``.
        labels: ``N`` int64, 1 foreground / 0 background.
        mask_input: ``256 x 256`` float32 logits or ``None``.
    """

    box: np.ndarray | None
    points: np.ndarray
    labels: np.ndarray
    mask_input: np.ndarray | None = None

    @property
    def is_empty(self) -> bool:
        """No box and no points: nothing to segment."""
        return self.box is None and len(self.points) == 0


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an ``H x W x 3`` uint8 image and return it C-contiguous.

    Raises:
        ValueError: The array is not ``H x W x 3`` uint8 with ``H, W >= 1``.
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(
            f"{name} must be an H x W x 3 uint8 RGB array; got shape {arr.shape} dtype {arr.dtype} "
            "(convert with np.asarray(pil_image.convert('RGB')))"
        )
    return np.ascontiguousarray(arr)


def clean_prompt(prompt: Prompt, height: int, width: int) -> CleanPrompt:
    """Apply the module's rules to one prompt for an ``height x width`` image.

    Raises:
        ValueError: Points are not ``N x 2``, labels do not match them or are not 0/1, or
            ``mask_input`` has the wrong shape.
    """
    box = None
    if prompt.box is not None:
        raw = np.asarray(prompt.box, dtype=np.float64).reshape(-1)
        if raw.shape != (4,):
            raise ValueError(f"Prompt.box must hold 4 numbers (x1, y1, x2, y2); got {prompt.box!r}")
        if np.all(np.isfinite(raw)):
            x1, x2 = sorted((raw[0], raw[2]))
            y1, y2 = sorted((raw[1], raw[3]))
            overlaps = x2 >= 0 and y2 >= 0 and x1 <= width - 1 and y1 <= height - 1
            if overlaps:
                box = np.array(
                    [max(x1, 0.0), max(y1, 0.0), min(x2, width - 1.0), min(y2, height - 1.0)], dtype=np.float64
                )
    points = np.asarray(prompt.points, dtype=np.float64)
    labels = np.asarray(prompt.point_labels).astype(np.int64, copy=False).reshape(-1)
    if points.size == 0:
        points = np.zeros((0, 2), dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"Prompt.points must be an N x 2 array of (x, y); got shape {points.shape}")
    if labels.shape[0] != points.shape[0]:
        raise ValueError(f"Prompt.point_labels has {labels.shape[0]} labels for {points.shape[0]} points")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError(f"Prompt.point_labels must be 1 (foreground) or 0 (background); got {sorted(set(labels))}")
    finite = np.all(np.isfinite(points), axis=1)
    points, labels = points[finite], labels[finite]
    points = np.stack([np.clip(points[:, 0], 0, width - 1), np.clip(points[:, 1], 0, height - 1)], axis=1)
    mask_input = None
    if prompt.mask_input is not None:
        mask_input = np.asarray(prompt.mask_input, dtype=np.float32)
        if mask_input.shape not in ((MASK_INPUT_SIZE, MASK_INPUT_SIZE), (1, MASK_INPUT_SIZE, MASK_INPUT_SIZE)):
            raise ValueError(
                f"Prompt.mask_input must be {MASK_INPUT_SIZE} x {MASK_INPUT_SIZE} low-res logits "
                f"(as returned by segment_with_logits); got shape {mask_input.shape}"
            )
        mask_input = mask_input.reshape(MASK_INPUT_SIZE, MASK_INPUT_SIZE)
    return CleanPrompt(box=box, points=points, labels=labels, mask_input=mask_input)


def clean_prompts(prompts: Sequence[Prompt], height: int, width: int) -> list[CleanPrompt]:
    """:func:`clean_prompt` for each prompt."""
    return [clean_prompt(p, height, width) for p in prompts]


def round_half_up(values: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves up (``0.5 -> 1``, ``-0.5 -> 0``), as int64."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5).astype(np.int64)

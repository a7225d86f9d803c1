"""The box segmenter: the mask is the box. A deterministic baseline and a test tool."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segzero_env.segmenters._prompts import CleanPrompt, check_image, clean_prompts, round_half_up
from segzero_env.segmenters.base import SegmenterBase
from segzero_env.types import Prompt


def fill_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fill ``B x 4`` boxes into a ``B x H x W`` bool array, all at once.

    Corners are rounded half up and the box is pixel-inclusive: ``(x1, y1, x2, y2)`` covers
    columns ``x1 .. x2`` and rows ``y1 .. y2`` (so a zero-area box is a 1-pixel line or dot).
    Rows with NaN in them give an empty mask (used for prompts without a box).

    >>> fill_boxes(np.array([[1, 0, 2, 1]]), 3, 4).astype(int)[0]
    array([[0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    valid = np.all(np.isfinite(boxes), axis=1)
    corners = round_half_up(np.where(valid[:, None], boxes, -1.0))
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    x1, y1, x2, y2 = (corners[:, i, None, None] for i in range(4))
    inside = (rows >= y1) & (rows <= y2) & (cols >= x1) & (cols <= x2)
    return inside & valid[:, None, None]


def prompt_boxes(prompts: Sequence[CleanPrompt]) -> np.ndarray:
    """``B x 4`` boxes of cleaned prompts; NaN rows where a prompt has no box."""
    out = np.full((len(prompts), 4), np.nan)
    for i, prompt in enumerate(prompts):
        if prompt.box is not None:
            out[i] = prompt.box
    return out


class BoxSegmenter(SegmenterBase):
    """Fills each prompt's box; points and ``mask_input`` are ignored.

    Behaviour, per prompt (after the shared prompt rules of ``segmenters._prompts``):

    - The box is rounded half up and filled pixel-inclusively (``x1 .. x2``, ``y1 .. y2``),
      clipped to the image. A zero-area box gives a 1-pixel-wide line (or a single pixel).
    - A box entirely outside the image, or no box at all, gives an EMPTY mask, even when the
      prompt has points: this segmenter reads boxes only, so a reply without a usable box scores
      as an empty prediction.

    Deterministic and vectorised: all prompts of an image are filled in one numpy expression.
    """

    name = "box"

    def segment(self, image: np.ndarray, prompts: Sequence[Prompt], image_key: str | None = None) -> np.ndarray:
        """Return ``B x H x W`` bool masks, one filled box per prompt."""
        image = check_image(image)
        height, width = image.shape[:2]
        cleaned = clean_prompts(prompts, height, width)
        return fill_boxes(prompt_boxes(cleaned), height, width)

"""Overlay drawing: image, ground-truth and predicted masks, boxes, points and the query."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import cv2
import numpy as np

from segzero_env.types import Prompt

GT_COLOUR = (40, 200, 40)
PRED_COLOUR = (230, 40, 40)
POINT_COLOUR = (255, 220, 0)


def _blend(canvas: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float) -> None:
    region = mask.astype(bool)
    canvas[region] = (canvas[region] * (1 - alpha) + np.array(colour) * alpha).astype(np.uint8)


def draw_overlay(
    image: np.ndarray,
    query: str,
    gt_mask: np.ndarray | None = None,
    pred_mask: np.ndarray | None = None,
    prompts: Sequence[Prompt] = (),
    iou: float | None = None,
    max_side: int = 640,
) -> np.ndarray:
    """Draw the prediction over the image (original frame) and return an RGB uint8 picture.

    Ground truth is green (ignore pixels grey), the prediction red, boxes red outlines, points
    yellow dots; the query and IoU are written in a band under the image.

    >>> img = np.zeros((40, 60, 3), np.uint8)
    >>> draw_overlay(img, "the red circle").shape[1]
    60
    """
    canvas = image.copy()
    if gt_mask is not None:
        _blend(canvas, gt_mask == 1, GT_COLOUR, 0.45)
        _blend(canvas, gt_mask == 255, (128, 128, 128), 0.45)
    if pred_mask is not None:
        _blend(canvas, pred_mask, PRED_COLOUR, 0.45)
    thickness = max(1, round(max(canvas.shape[:2]) / 300))
    for prompt in prompts:
        if prompt.box is not None:
            x1, y1, x2, y2 = (int(round(v)) for v in prompt.box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), PRED_COLOUR, thickness)
        for (x, y), label in zip(prompt.points, prompt.point_labels, strict=True):
            colour = POINT_COLOUR if label == 1 else (0, 160, 255)
            cv2.circle(canvas, (int(round(x)), int(round(y))), 2 * thickness + 1, colour, -1)
    scale = min(1.0, max_side / max(canvas.shape[:2]))
    if scale < 1.0:
        canvas = cv2.resize(canvas, (round(canvas.shape[1] * scale), round(canvas.shape[0] * scale)))
    caption = query if iou is None else f"{query}  [IoU {iou:.3f}]"
    lines = textwrap.wrap(caption, width=max(20, canvas.shape[1] // 8))[:4] or [""]
    band = np.full((14 * len(lines) + 6, canvas.shape[1], 3), 255, np.uint8)
    for row, line in enumerate(lines):
        cv2.putText(band, line, (3, 14 * row + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([canvas, band], axis=0)

"""Overlay drawing: image, ground-truth and predicted masks, boxes, points, the query, a legend and the IoU.

The picture is the image scaled so its long side lies between ``min_side`` and ``max_side`` pixels,
with a white band under it: the query, then the IoU and a legend of every mark (:data:`LEGEND`).
The band depends only on the query and the width, so every frame of an episode has the same size
(video recorders need that), before and after a step.

>>> frame = draw_overlay(np.zeros((40, 60, 3), np.uint8), "the red circle", iou=0.5)
>>> frame.shape[1], frame.shape[0] > 320  # scaled up to a 480 px long side, plus the band
(480, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from segzero_env.types import Prompt

GT_COLOUR = (40, 200, 40)
PRED_COLOUR = (230, 40, 40)
BOX_COLOUR = (30, 110, 255)
POINT_COLOUR = (255, 220, 0)
NEGATIVE_POINT_COLOUR = (0, 230, 230)
IGNORE_COLOUR = (150, 150, 150)
OUTLINE_COLOUR = (0, 0, 0)

LEGEND: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("ground truth", GT_COLOUR),
    ("prediction", PRED_COLOUR),
    ("box", BOX_COLOUR),
    ("point", POINT_COLOUR),
    ("negative point", NEGATIVE_POINT_COLOUR),
    ("ignore region", IGNORE_COLOUR),
)
"""Legend entries, in order: label and the colour its mark is drawn in."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.45
_LINE_HEIGHT = 18
_SWATCH = 13
_MARGIN = 6


def _blend(canvas: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float) -> None:
    region = mask.astype(bool)
    canvas[region] = (canvas[region] * (1 - alpha) + np.array(colour) * alpha).astype(np.uint8)


def _outline(canvas: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], thickness: int) -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, contours, -1, colour, thickness, cv2.LINE_AA)


def _hatch(shape: tuple[int, int], period: int = 8) -> np.ndarray:
    """Diagonal stripes, ``True`` on half of each ``period``."""
    rows, cols = np.indices(shape)
    return (rows + cols) % period < period // 2


def _point(canvas: np.ndarray, x: float, y: float, colour: tuple[int, int, int], radius: int) -> None:
    centre = (int(round(x)), int(round(y)))
    cv2.circle(canvas, centre, radius + 1, OUTLINE_COLOUR, -1, cv2.LINE_AA)
    cv2.circle(canvas, centre, radius, colour, -1, cv2.LINE_AA)


def _scaled(image: np.ndarray, masks: Sequence[np.ndarray | None], min_side: int, max_side: int) -> tuple:
    """Scale the image (area or linear) and masks (nearest) so the long side is within the bounds."""
    long_side = max(image.shape[:2])
    scale = max_side / long_side if long_side > max_side else max(1.0, min_side / long_side)
    if scale == 1.0:
        return image.copy(), [None if m is None else np.asarray(m) for m in masks], 1.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    method = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = [
        None if m is None else cv2.resize(np.asarray(m).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        for m in masks
    ]
    return cv2.resize(image, size, interpolation=method), resized, scale


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0][0]


def _wrap(text: str, width: int, max_lines: int) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` pixels; the last kept line ends in ``...`` if cut."""
    words: list[str] = []
    for word in text.split():
        while len(word) > 1 and _text_width(word) > width:  # a word wider than the picture is split
            cut = max(1, len(word) * width // _text_width(word))
            words.append(word[:cut])
            word = word[cut:]
        words.append(word)
    lines: list[str] = []
    for word in words:
        if lines and _text_width(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and _text_width(f"{last}...") > width:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], f"{last.rstrip()}..."]
    return lines or [""]


def draw_legend(width: int, iou: float | None) -> np.ndarray:
    """The legend rows (white, ``width`` wide): the IoU, then a swatch and label per :data:`LEGEND` entry.

    Entries wrap onto further rows when the width runs out; the height depends on the width only.
    """
    items = [(f"IoU {iou:.3f}" if iou is not None else "IoU -", None), *LEGEND]
    rows: list[list[tuple[str, tuple[int, int, int] | None, int]]] = [[]]
    x = _MARGIN
    for label, colour in items:
        # the IoU slot is as wide as "IoU 0.000" whatever it shows, so the layout never changes with it
        text_width = cv2.getTextSize("IoU 0.000" if colour is None else label, _FONT, _FONT_SCALE, 2)[0][0]
        item_width = text_width + (0 if colour is None else _SWATCH + 4)
        if rows[-1] and x + item_width > width - _MARGIN:
            rows.append([])
            x = _MARGIN
        rows[-1].append((label, colour, x))
        x += item_width + 14
    band = np.full((_LINE_HEIGHT * len(rows) + 4, width, 3), 255, np.uint8)
    for row, entries in enumerate(rows):
        top = row * _LINE_HEIGHT + 2
        for label, colour, left in entries:
            text_left = left
            if colour is not None:
                _swatch(band, label, colour, left, top)
                text_left = left + _SWATCH + 4
            thickness = 2 if colour is None else 1  # the IoU in bold
            cv2.putText(band, label, (text_left, top + _SWATCH), _FONT, _FONT_SCALE, (0, 0, 0), thickness, cv2.LINE_AA)
    return band


def _swatch(band: np.ndarray, label: str, colour: tuple[int, int, int], left: int, top: int) -> None:
    """Draw the legend mark of one entry the way it appears on the picture."""
    x1, y1, x2, y2 = left, top + 1, left + _SWATCH, top + 1 + _SWATCH
    if label == "ground truth":
        band[y1:y2, x1:x2] = (band[y1:y2, x1:x2] * 0.7 + np.array(colour) * 0.3).astype(np.uint8)
        cv2.rectangle(band, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
    elif label == "prediction":
        band[y1:y2, x1:x2] = colour
    elif label == "box":
        cv2.rectangle(band, (x1 + 1, y1 + 1), (x2 - 2, y2 - 2), colour, 2)
    elif label == "ignore region":
        stripes = _hatch((_SWATCH, _SWATCH), period=6)
        band[y1:y2, x1:x2][stripes] = colour
    else:
        _point(band, (x1 + x2) / 2, (y1 + y2) / 2, colour, _SWATCH // 2 - 2)


def draw_overlay(
    image: np.ndarray,
    query: str,
    gt_mask: np.ndarray | None = None,
    pred_mask: np.ndarray | None = None,
    prompts: Sequence[Prompt] = (),
    iou: float | None = None,
    max_side: int = 640,
    min_side: int = 480,
) -> np.ndarray:
    """Draw the prediction over the image (original frame) and return an RGB uint8 picture.

    Ground truth: green outline over a light green fill; ignore pixels: grey stripes; prediction: red
    fill with a red outline; boxes: blue outlines; points: yellow dots (negative clicks cyan). The
    band under the image holds the query, the IoU (``IoU -`` before any prediction) and the legend.

    Args:
        image: ``H x W x 3`` uint8 image.
        query: The query text, wrapped over at most four lines.
        gt_mask: ``H x W`` mask, ``1`` (or ``True``) for the target, ``255`` for ignore pixels.
        pred_mask: ``H x W`` predicted mask.
        prompts: Segmenter prompts (boxes and points) in the image's frame.
        iou: The IoU to show.
        max_side: Larger images are scaled down to this long side.
        min_side: Smaller images are scaled up to this long side (so the legend and text stay legible).
    """
    canvas, (gt, pred), scale = _scaled(image, (gt_mask, pred_mask), min_side, max_side)
    thickness = max(2, round(max(canvas.shape[:2]) / 300))
    if gt is not None:
        ignore = gt == 255
        _blend(canvas, ignore & _hatch(ignore.shape), IGNORE_COLOUR, 0.8)
        _blend(canvas, gt == 1, GT_COLOUR, 0.3)
    if pred is not None:
        _blend(canvas, pred.astype(bool), PRED_COLOUR, 0.45)
    if gt is not None:
        _outline(canvas, gt == 1, GT_COLOUR, thickness + 1)
    if pred is not None:
        _outline(canvas, pred.astype(bool), PRED_COLOUR, max(1, thickness - 1))
    for prompt in prompts:
        if prompt.box is not None:
            x1, y1, x2, y2 = (int(round(v * scale)) for v in prompt.box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOUR, thickness, cv2.LINE_AA)
        for (x, y), label in zip(prompt.points, prompt.point_labels, strict=True):
            colour = POINT_COLOUR if label == 1 else NEGATIVE_POINT_COLOUR
            _point(canvas, x * scale, y * scale, colour, 2 * thickness + 1)
    width = canvas.shape[1]
    lines = _wrap(query, width - 2 * _MARGIN, max_lines=4)
    caption = np.full((_LINE_HEIGHT * len(lines) + 6, width, 3), 255, np.uint8)
    for row, line in enumerate(lines):
        cv2.putText(caption, line, (_MARGIN, _LINE_HEIGHT * row + 16), _FONT, _FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([canvas, caption, draw_legend(width, iou)], axis=0)

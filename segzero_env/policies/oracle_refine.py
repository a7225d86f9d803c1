"""``oracle-refine``: the interactive-segmentation oracle, one corrective click per refinement turn."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from segzero_env.answers import format_refinement
from segzero_env.policies.base import PolicyBase, frame_size
from segzero_env.policies.replies import write_reply
from segzero_env.types import Point

FIRST_ANSWERS = ("gt", "grown-box")


def error_click(pred: np.ndarray, gt: np.ndarray) -> tuple[Point, bool] | None:
    """The corrective click for a prediction: ``((x, y), positive)``, or ``None`` when it has no error.

    The error regions are the false negatives (target pixels outside the prediction) and the false
    positives (prediction on background); ignore pixels (255) belong to neither. The larger of
    the two (by pixel count; false negatives win a tie) is clicked at the maximum of its distance
    transform (the image border counts as outside the region), the point deepest inside the
    error: positive for false negatives, negative for false positives.

    >>> gt = np.zeros((10, 10), np.uint8); gt[2:8, 2:8] = 1
    >>> pred = np.zeros((10, 10), bool); pred[2:8, 2:5] = True
    >>> error_click(pred, gt)
    ((6.0, 3.0), True)
    """
    pred = np.asarray(pred).astype(bool)
    target = gt == 1
    false_negative = target & ~pred
    false_positive = pred & (gt == 0)
    n_fn, n_fp = int(false_negative.sum()), int(false_positive.sum())
    if n_fn == 0 and n_fp == 0:
        return None
    positive = n_fn >= n_fp
    region = false_negative if positive else false_positive
    padded = np.pad(region.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return (float(x), float(y)), positive


class OracleRefinePolicy(PolicyBase):
    """First the ground-truth answer, then one click per turn on the largest error region.

    Turn 1 (``turn == 0``): ``first="gt"`` answers with the ground-truth box and points, as
    ``oracle`` does; ``first="grown-box"`` grows that box by ``grow`` of its width / height on
    every side (clipped to the frame), leaving room for the refinement turns to matter. Later
    turns: :func:`error_click` on the observation's ``prev_mask`` against ``info["gt_mask"]``
    (both ``S x S``), written as a refinement reply; with no error left it answers
    ``{"stop": true}``. Needs a multi-turn env made with ``expose_gt_mask=True``.

    Args:
        first: ``"gt"`` or ``"grown-box"``.
        grow: Box growth per side for ``"grown-box"``, as a fraction of the box size.
        schema: Grammar of the first answer (``"seg-zero"`` or ``"vision-reasoner"``).
    """

    name = "oracle-refine"

    def __init__(self, first: str = "gt", grow: float = 0.3, schema: str = "seg-zero") -> None:
        if first not in FIRST_ANSWERS:
            raise ValueError(f"first must be one of {FIRST_ANSWERS}, got {first!r}")
        if grow < 0:
            raise ValueError(f"grow must be >= 0, got {grow}")
        self.first = first
        self.grow = float(grow)
        self.schema = schema
        self.counts = {"no_target": 0, "positive_clicks": 0, "negative_clicks": 0, "stops": 0}

    def _first_answer(self, info: dict[str, Any], size: int) -> str:
        box = info.get("gt_box")
        if box is None:
            self.counts["no_target"] += 1
            return ""
        x1, y1, x2, y2 = (float(v) for v in box)
        points = [tuple(float(c) for c in p) for p in (info.get("gt_points") or [])] or [((x1 + x2) / 2, (y1 + y2) / 2)]
        if len(points) == 1:
            points = points * 2
        if self.first == "grown-box":
            dx, dy = self.grow * (x2 - x1), self.grow * (y2 - y1)
            x1, y1 = max(0.0, round(x1 - dx)), max(0.0, round(y1 - dy))
            x2, y2 = min(size - 1.0, round(x2 + dx)), min(size - 1.0, round(y2 + dy))
        return write_reply((x1, y1, x2, y2), points[:2], schema=self.schema, think="The ground truth.")

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        """Return the first answer on turn 0, else the corrective click (or stop)."""
        turn = int(info.get("turn", observation.get("turn", 0)))
        if turn == 0:
            return self._first_answer(info, frame_size(observation, info))
        if "gt_mask" not in info or "prev_mask" not in observation:
            raise KeyError(
                "oracle-refine needs observation['prev_mask'] and info['gt_mask']: make the env with "
                "max_turns > 1 and expose_gt_mask=True"
            )
        click = error_click(np.asarray(observation["prev_mask"]), np.asarray(info["gt_mask"]))
        if click is None:
            self.counts["stops"] += 1
            return format_refinement(stop=True, think="The mask matches the target.")
        point, positive = click
        if positive:
            self.counts["positive_clicks"] += 1
            return format_refinement([point], think="Part of the target is missing.")
        self.counts["negative_clicks"] += 1
        return format_refinement(negative_points=[point], think="The mask spills onto the background.")

    def stats(self) -> dict[str, Any]:
        """Clicks of each sign, stops, and samples without a target."""
        return dict(self.counts)

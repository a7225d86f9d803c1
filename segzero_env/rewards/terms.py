r"""Reward terms: small pure functions of one :class:`RewardInput`.

Every term is computed for every reply and reported under a stable name, whatever weight a preset
gives it. The table gives the ``robust`` rules, which read the parsed answer; the ``upstream`` rules
(:mod:`segzero_env.rewards.upstream`) compute the same names as Seg-Zero's and VisionReasoner's
training rewards do, from the raw reply. A term that cannot be computed for a sample (no ground-truth
mask, box or points) is 0.0, and :func:`unavailable_terms` says which ones and why.

==============  =======  ===================================================================================
term            range    rule
==============  =======  ===================================================================================
think_format    0 / 1    the stripped reply fully matches ``<think>.*?</think>\s*<answer>.*?</answer>``
answer_format   0 / 1    the answer was read, is strict JSON and has the schema the prompt asked for
                         (Seg-Zero: ``bbox`` 4 numbers, ``points_1`` and ``points_2`` 2 numbers each)
box_iou         0 / 1    IoU(first predicted box, GT box) > 0.5, inclusive-pixel convention, S frame
box_l1          0 / 1    mean |difference| of the 4 box coordinates < 10 px, S frame
points          0 / 1    the first object has as many points as the GT (2), all inside its own box, and
                         the best-order mean distance to the GT points is < 100 px
vr_format       0 .. 3   think_format + mean over list elements of ([valid bbox_2d] + [valid point_2d]);
                         a reply with no ``bbox_2d`` list scores think_format alone
vr_accuracy     0 .. 3   Hungarian matching of predicted to GT objects on 3 - ([IoU > 0.5] + [L1 < 10] +
                         [point distance < 30 and point inside its own box]), matched scores summed and
                         divided by max(#pred, #GT); an object's point is its first point
non_repeat      0 / 1    the reasoning (the first ``<think>`` block, else the whole reply) has at least one
                         sentence and no sentence appears twice
mask_iou        0 .. 1   IoU of the segmenter's mask with the GT mask, LISA's rules (ignore pixels left
                         out, both empty = 1, no prediction = empty mask)
==============  =======  ===================================================================================

No-target samples (``RewardInput.no_target``: gRefCOCO's no-target expressions, shapes level 4) under the
robust rules: the "no object" answer ``[]`` (``ParsedReply.no_object``) earns full marks on every
accuracy term (``box_iou``, ``box_l1``, ``points`` 1, ``vr_accuracy`` 3, ``mask_iou`` 1 since both masks
are empty), and any object earns 0 on them. On a sample with a target the empty answer earns 0 accuracy
(and ``mask_iou`` 0). The empty answer is well formed in either schema (``answer_format`` 1 when strict
JSON; ``vr_format`` counts it as a valid list: think_format + 2). The ``upstream`` rules know no empty
answer and are unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from math import hypot

import numpy as np

from segzero_env.geometry import best_order_point_distance, box_iou, box_l1, mask_iou, point_distance, point_in_box
from segzero_env.rewards import upstream
from segzero_env.types import AnswerSchema, Box, FailureReason, ObjectAnswer, ParsedReply, Point

BOX_IOU_THRESHOLD = 0.5
"""``box_iou`` and ``vr_accuracy``: a box counts when IoU with the GT box exceeds this."""
BOX_L1_THRESHOLD = 10.0
"""``box_l1`` and ``vr_accuracy``: a box counts when its mean coordinate error is below this (px, S frame)."""
POINTS_DISTANCE_THRESHOLD = 100.0
"""``points``: best-order mean distance to the GT points must be below this (px, S frame)."""
VR_POINT_DISTANCE_THRESHOLD = 30.0
"""``vr_accuracy``: a point counts when closer than this to the GT object's point (px, S frame)."""

TERM_RANGES: dict[str, tuple[float, float]] = {
    "think_format": (0.0, 1.0),
    "answer_format": (0.0, 1.0),
    "box_iou": (0.0, 1.0),
    "box_l1": (0.0, 1.0),
    "points": (0.0, 1.0),
    "vr_format": (0.0, 3.0),
    "vr_accuracy": (0.0, 3.0),
    "non_repeat": (0.0, 1.0),
    "mask_iou": (0.0, 1.0),
}
"""Every term's name and ``(lowest, highest)`` value, in the order they are reported."""

TERM_NAMES: tuple[str, ...] = tuple(TERM_RANGES)

RULES: tuple[str, ...] = ("robust", "upstream")
"""Rule sets a preset can score with (see :func:`compute_terms`)."""

SENTENCE_END = r"[.!?]+(?:\s+|$)|\n+"
"""What ends a sentence for ``non_repeat``: end punctuation before whitespace or the end, or newlines."""
_SENTENCE_SPLIT = re.compile(r"[.!?\n](?:(?<=[.!?])[.!?]*(?:\s+|$)|(?<=\n)\n*)")
"""Splits exactly where :data:`SENTENCE_END` matches, ~4x faster: its one leading character class lets
the regular expression engine skip ahead to the candidates (the two branches' own first characters,
told apart by a look-behind, then the rest of each branch as written)."""


@dataclass(frozen=True)
class RewardInput:
    """Everything the reward terms look at for one reply.

    Attributes:
        reply: The raw reply text.
        parsed: ``parse_reply(reply)``.
        gt_box: Ground-truth box in the ``S x S`` frame, or ``None``.
        gt_points: Ground-truth points in the ``S x S`` frame, or ``None``.
        pred_mask: ``H x W`` bool mask from the segmenter in the original frame; ``None`` when there
            was no prediction (an unusable reply): counted as an empty mask.
        gt_mask: ``H x W`` uint8 ground truth in the original frame (0 / 1 / 255), or ``None``.
        image_size: ``S``, the side of the observation frame.
        expected_schema: The answer schema the prompt asked for (``answer_format`` checks it).
        gt_objects: All ground-truth objects (``S x S`` frame) for multi-object matching; ``None``
            means the single object ``(gt_box, gt_points)``.
        mask_iou: The mask IoU when the caller has already counted it (the env's segmenter path
            does); ``None`` computes it from ``pred_mask`` and ``gt_mask``.
        no_target: The query names nothing in the image: the right answer is the empty one.
    """

    reply: str
    parsed: ParsedReply
    gt_box: Box | None
    gt_points: tuple[Point, ...] | None
    pred_mask: np.ndarray | None
    gt_mask: np.ndarray | None
    image_size: int
    expected_schema: AnswerSchema = AnswerSchema.SEG_ZERO
    gt_objects: tuple[ObjectAnswer, ...] | None = None
    mask_iou: float | None = None
    no_target: bool = False

    @classmethod
    def fast(
        cls,
        *,
        reply: str,
        parsed: ParsedReply,
        gt_box: Box | None,
        gt_points: tuple[Point, ...] | None,
        pred_mask: np.ndarray | None,
        gt_mask: np.ndarray | None,
        image_size: int,
        expected_schema: AnswerSchema = AnswerSchema.SEG_ZERO,
        gt_objects: tuple[ObjectAnswer, ...] | None = None,
        mask_iou: float | None = None,
        no_target: bool = False,
    ) -> RewardInput:
        """``RewardInput(...)`` without the frozen dataclass's per-field ``__setattr__`` (one per reply).

        Keyword arguments only, the fields' names; the result compares equal to the regular constructor's.
        """
        obj = object.__new__(cls)
        values = {
            "reply": reply,
            "parsed": parsed,
            "gt_box": gt_box,
            "gt_points": gt_points,
            "pred_mask": pred_mask,
            "gt_mask": gt_mask,
            "image_size": image_size,
            "expected_schema": expected_schema,
            "gt_objects": gt_objects,
            "mask_iou": mask_iou,
            "no_target": no_target,
        }
        object.__setattr__(obj, "__dict__", values)
        return obj


def think_format(inp: RewardInput) -> float:
    """1.0 when the reply has the ``<think>...</think> <answer>...</answer>`` layout."""
    return 1.0 if inp.parsed.think_format else 0.0


def answer_format(inp: RewardInput) -> float:
    """1.0 when the answer is strict JSON in the expected schema (or the "no object" answer ``[]``)."""
    p = inp.parsed
    if p.failure is not None or not p.strict_json:
        return 0.0
    return 1.0 if p.no_object or (p.objects and p.schema is inp.expected_schema) else 0.0


def _no_target_score(inp: RewardInput, full: float) -> float | None:
    """On a no-target sample, ``full`` for the "no object" answer and 0 for anything else; ``None`` otherwise."""
    if not inp.no_target:
        return None
    return full if inp.parsed.no_object else 0.0


def _first_object(inp: RewardInput) -> ObjectAnswer | None:
    objects = inp.parsed.objects
    return objects[0] if objects else None


def box_iou_term(inp: RewardInput) -> float:
    """1.0 when the first predicted box overlaps the GT box with IoU > 0.5 (inclusive pixels)."""
    no_target = _no_target_score(inp, 1.0)
    if no_target is not None:
        return no_target
    obj = _first_object(inp)
    if obj is None or inp.gt_box is None:
        return 0.0
    return 1.0 if box_iou(obj.box, inp.gt_box, inclusive=True) > BOX_IOU_THRESHOLD else 0.0


def box_l1_term(inp: RewardInput) -> float:
    """1.0 when the first predicted box's mean coordinate error is below 10 px."""
    no_target = _no_target_score(inp, 1.0)
    if no_target is not None:
        return no_target
    obj = _first_object(inp)
    if obj is None or inp.gt_box is None:
        return 0.0
    return 1.0 if box_l1(obj.box, inp.gt_box) < BOX_L1_THRESHOLD else 0.0


def points_term(inp: RewardInput) -> float:
    """1.0 when the first object's points lie in its box and near the GT points (best order)."""
    no_target = _no_target_score(inp, 1.0)
    if no_target is not None:
        return no_target
    obj = _first_object(inp)
    gt = inp.gt_points
    if obj is None or not gt or len(obj.points) != len(gt):
        return 0.0
    if not all(point_in_box(p, obj.box) for p in obj.points):
        return 0.0
    return 1.0 if best_order_point_distance(obj.points, gt) < POINTS_DISTANCE_THRESHOLD else 0.0


def vr_format(inp: RewardInput) -> float:
    """Think format plus the mean per-element validity of ``bbox_2d`` and ``point_2d`` (0..3)."""
    checks = inp.parsed.item_checks
    score = 1.0 if inp.parsed.think_format else 0.0
    if inp.parsed.no_object:
        return score + 2.0  # an empty list has no invalid element
    if checks:
        score += sum(int(b) + int(p) for b, p in checks) / len(checks)
    return score


def _gt_objects(inp: RewardInput) -> tuple[ObjectAnswer, ...]:
    if inp.gt_objects is not None:
        return inp.gt_objects
    if inp.gt_box is None:
        return ()
    return (ObjectAnswer(box=inp.gt_box, points=tuple(inp.gt_points or ())),)


def _match_score(pred: ObjectAnswer, gt: ObjectAnswer) -> int:
    score = 0
    if box_iou(pred.box, gt.box, inclusive=True) > BOX_IOU_THRESHOLD:
        score += 1
    if box_l1(pred.box, gt.box) < BOX_L1_THRESHOLD:
        score += 1
    if (
        pred.points
        and gt.points
        and point_in_box(pred.points[0], pred.box)
        and point_distance(pred.points[0], gt.points[0]) < VR_POINT_DISTANCE_THRESHOLD
    ):
        score += 1
    return score


def vr_accuracy(inp: RewardInput) -> float:
    """Hungarian-matched accuracy of predicted against GT objects (0..3)."""
    no_target = _no_target_score(inp, 3.0)
    if no_target is not None:
        return no_target
    preds = inp.parsed.objects if inp.parsed.failure is None else ()
    gts = _gt_objects(inp)
    if not preds or not gts:
        return 0.0
    denominator = max(len(preds), len(gts))
    if len(preds) == 1 or len(gts) == 1:
        # One side has a single object: the best assignment is its best match.
        return max(_match_score(p, g) for p in preds for g in gts) / denominator
    from scipy.optimize import linear_sum_assignment

    scores = np.array([[_match_score(p, g) for g in gts] for p in preds], dtype=float)
    rows, cols = linear_sum_assignment(3.0 - scores)
    return float(scores[rows, cols].sum()) / denominator


def non_repeat(inp: RewardInput) -> float:
    """1.0 when the reasoning has sentences and none of them repeats."""
    reply = inp.reply
    if not isinstance(reply, str) or inp.parsed.failure is FailureReason.TOO_LONG:
        return 0.0
    text = reply  # the reasoning: the first <think> block, else the whole reply
    start = reply.find("<think>")
    if start >= 0:
        end = reply.find("</think>", start)
        if end >= 0:
            text = reply[start + 7 : end]  # 7: len("<think>")
    sentences = list(filter(None, map(str.strip, _SENTENCE_SPLIT.split(text))))
    return 1.0 if sentences and len(set(sentences)) == len(sentences) else 0.0  # some sentence, none repeated


def mask_iou_term(inp: RewardInput) -> float:
    """Continuous mask IoU (LISA's rules); 0.0 when the sample has no GT mask."""
    if inp.gt_mask is None:
        return 0.0
    if inp.mask_iou is not None:
        return inp.mask_iou
    inter, union = mask_iou(inp.pred_mask, inp.gt_mask)
    return 1.0 if union == 0 else inter / union


TERM_FUNCTIONS: dict[str, Callable[[RewardInput], float]] = {
    "think_format": think_format,
    "answer_format": answer_format,
    "box_iou": box_iou_term,
    "box_l1": box_l1_term,
    "points": points_term,
    "vr_format": vr_format,
    "vr_accuracy": vr_accuracy,
    "non_repeat": non_repeat,
    "mask_iou": mask_iou_term,
}
"""The function behind each term, in :data:`TERM_NAMES` order."""

_TERM_ITEMS = tuple(TERM_FUNCTIONS.items())


def _upstream_terms(inp: RewardInput) -> dict[str, float]:
    reply = inp.reply if isinstance(inp.reply, str) else ""
    fast = upstream.canonical_seg_zero_terms(reply, inp.parsed, inp.gt_box, inp.gt_points)
    if fast is not None:
        # The answer is a JSON object: VisionReasoner's loop over its keys counts nothing, and its
        # accuracy needs a list.
        think, answer_format, iou, l1, points = fast
        return {
            "think_format": think,
            "answer_format": answer_format,
            "box_iou": iou,
            "box_l1": l1,
            "points": points,
            "vr_format": think,
            "vr_accuracy": 0.0,
            "non_repeat": upstream.non_repeat(reply),
            "mask_iou": mask_iou_term(inp) if inp.gt_mask is not None else 0.0,
        }
    reading = upstream.read_upstream(reply, inp.parsed)
    answer_format, iou, l1, points = upstream.seg_zero_terms(reading, inp.gt_box, inp.gt_points)
    return {
        "think_format": 1.0 if reading.think_format else 0.0,
        "answer_format": answer_format,
        "box_iou": iou,
        "box_l1": l1,
        "points": points,
        "vr_format": upstream.vr_format(reading),
        "vr_accuracy": upstream.vr_accuracy(
            reading, upstream.vr_ground_truth(inp.gt_box, inp.gt_points, inp.gt_objects)
        ),
        "non_repeat": upstream.non_repeat(reply),
        "mask_iou": mask_iou_term(inp),
    }


def _common_terms(inp: RewardInput) -> dict[str, float] | None:
    """The robust terms of the two common cases, as the term functions give them; ``None`` otherwise.

    * No object (a failure, or ``[]`` on a sample with a target): every accuracy term is 0.
    * One object against one ground-truth object (a Seg-Zero answer, a one-element list): the box's
      IoU and L1 and the point distances are computed once. ``vr_accuracy`` of one prediction
      against one object is ``[IoU > 0.5] + [L1 < 10] + [first point in its box and within 30 px of
      the ground truth's first]``, the first two being ``box_iou`` and ``box_l1``.
    """
    if inp.no_target:
        return None
    objects = inp.parsed.objects
    iou = l1 = points = near = 0.0
    if objects:
        gt_box = inp.gt_box
        if len(objects) != 1 or gt_box is None or inp.gt_objects is not None:
            return None
        obj = objects[0]
        box, pts = obj.box, obj.points
        iou = 1.0 if box_iou(box, gt_box, inclusive=True) > BOX_IOU_THRESHOLD else 0.0
        l1 = 1.0 if box_l1(box, gt_box) < BOX_L1_THRESHOLD else 0.0
        gt = inp.gt_points
        if pts and gt:
            x1, y1, x2, y2 = box
            if len(pts) == len(gt) == 2:  # best_order_point_distance's two orders, each distance once
                (p0x, p0y), (p1x, p1y) = pts  # the parser's points are pairs
                g0x, g0y, g1x, g1y = gt[0][0], gt[0][1], gt[1][0], gt[1][1]
                d00 = hypot(p0x - g0x, p0y - g0y)
                first_inside = x1 <= p0x <= x2 and y1 <= p0y <= y2  # point_in_box
                if first_inside and x1 <= p1x <= x2 and y1 <= p1y <= y2:
                    straight = d00 + hypot(p1x - g1x, p1y - g1y)
                    crossed = hypot(p0x - g1x, p0y - g1y) + hypot(p1x - g0x, p1y - g0y)
                    points = 1.0 if min(straight, crossed) / 2.0 < POINTS_DISTANCE_THRESHOLD else 0.0
            else:
                d00 = point_distance(pts[0], gt[0])
                first_inside = point_in_box(pts[0], box)
                if len(pts) == len(gt) and all(point_in_box(p, box) for p in pts):
                    points = 1.0 if best_order_point_distance(pts, gt) < POINTS_DISTANCE_THRESHOLD else 0.0
            near = 1.0 if first_inside and d00 < VR_POINT_DISTANCE_THRESHOLD else 0.0
    return {
        "think_format": think_format(inp),
        "answer_format": answer_format(inp),
        "box_iou": iou,
        "box_l1": l1,
        "points": points,
        "vr_format": vr_format(inp),
        "vr_accuracy": iou + l1 + near,
        "non_repeat": non_repeat(inp),
        "mask_iou": mask_iou_term(inp),
    }


def compute_terms(inp: RewardInput, rules: str = "robust") -> dict[str, float]:
    """Compute every reward term for one reply.

    Args:
        inp: The reply, its parse and the ground truth.
        rules: ``"robust"`` (the rules above, on the parsed answer) or ``"upstream"`` (Seg-Zero's
            and VisionReasoner's training rewards reproduced on the raw reply, quirks included:
            see :mod:`segzero_env.rewards.upstream`). ``mask_iou`` is the same under both.

    Returns:
        A dict with every name of :data:`TERM_NAMES`, in that order, each a float within
        :data:`TERM_RANGES`.

    Raises:
        ValueError: If ``rules`` is unknown.
    """
    if rules == "robust":
        return _common_terms(inp) or {name: fn(inp) for name, fn in _TERM_ITEMS}
    if rules == "upstream":
        return _upstream_terms(inp)
    raise ValueError(f"unknown reward rules {rules!r}; valid rules: {', '.join(RULES)}")


def unavailable_terms(inp: RewardInput) -> dict[str, str]:
    """Terms that score 0.0 for this sample whatever the reply, with the reason.

    >>> from segzero_env.parsing import parse_reply
    >>> unavailable_terms(RewardInput("", parse_reply(""), None, None, None, None, 840))["mask_iou"]
    'the sample has no ground-truth mask'
    """
    missing: dict[str, str] = {}
    if inp.gt_mask is None:
        missing["mask_iou"] = "the sample has no ground-truth mask"
    if inp.no_target:
        return missing  # the empty answer is scored on every accuracy term
    if inp.gt_box is None:
        for name in ("box_iou", "box_l1"):
            missing[name] = "the sample has no ground-truth box"
        if inp.gt_objects is None:
            missing["vr_accuracy"] = "the sample has no ground-truth objects"
    if not inp.gt_points:
        missing["points"] = "the sample has no ground-truth points"
    return missing

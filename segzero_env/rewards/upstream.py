r"""The ``upstream`` rule set: Seg-Zero's and VisionReasoner's training rewards, reproduced on every string.

The ``seg-zero`` and ``vision-reasoner`` presets score replies exactly as those projects' training
rewards do (Seg-Zero's strict reward, the one its 3B and 7B configs select, and VisionReasoner's
reward), quirks included, so that a result trained here can be compared with theirs. Their rules
read the raw reply text, not :func:`~segzero_env.parsing.parse_reply`'s typed answer:

* **Seg-Zero** reads the FIRST ``{...}`` of the whole reply (an opening brace followed by at least
  one character that is not ``}``, up to the next ``}``): braces in the reasoning come first, and a
  reply without answer tags is still scored. That text is decoded with :func:`json.loads` (so
  single quotes fail, ``NaN`` and ``Infinity`` pass). ``answer_format`` asks only that ``bbox`` be a
  list of 4 and ``points_1`` / ``points_2`` lists of 2, whatever they hold. ``box_iou`` and
  ``box_l1`` read ``bbox`` alone; ``points`` truncates each point with ``int()`` (so ``"12"``
  and ``1.9`` pass as 12 and 1). Boxes are used as written: an inverted box is not swapped.
  Areas are inclusive (``x2 - x1 + 1``) but an overlap counts only when ``x1 < x2`` strictly,
  so a one-pixel-wide overlap is 0.
* **VisionReasoner** reads the text between the first ``<answer>`` and the next ``</answer>``,
  whitespace stripped. ``vr_format`` adds, per list element, 1 for a ``bbox_2d`` list of 4 and 1
  for a ``point_2d`` list of 2, each divided by the list's length (what was counted before an
  element breaks the loop is kept). ``vr_accuracy`` needs every element to have both keys and
  numeric coordinates, keeps the first 120 predictions, and matches them to the ground truth with
  the Hungarian algorithm on ``3 - ([IoU > 0.5] + [L1 < 10] + [distance < 30 and point in its
  box])``; its IoU clips the overlap at 0 after adding 1 (a one-pixel overlap counts here).
  ``non_repeat`` splits the WHOLE reply on ``.`` and fails when two or more sentences repeat an
  earlier one.
* Both read ``<think>.*?</think>\s*<answer>.*?</answer>`` on the raw reply: a leading or trailing
  newline fails it.

Where the upstream code raises (its rewards catch every exception), the term is what upstream
returns then: 0, or for ``vr_format`` the part counted so far. Nothing here raises.
The table of every quirk with a reply and its value is in ``docs/rewards.md``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from segzero_env.parsing import ANSWER_TEXT_CHARS, think_format_ok
from segzero_env.parsing_fast import canonical_numbers, decode, floats
from segzero_env.types import AnswerSchema, ObjectAnswer, ParsedReply

VR_MAX_OBJECTS = 120
"""VisionReasoner keeps at most this many predicted (and ground-truth) objects."""

_NO_VALUE = object()
"""Marks text that was absent or did not decode."""


def fast_int_limit(int_dtype: Any) -> int:
    """The largest integer coordinate VisionReasoner's accuracy is scored with in Python, for numpy's integer type.

    ``int_dtype`` is the type numpy gives an array of Python ints (int64; int32 on Windows with numpy
    < 2). Up to the limit, with the ground truth within it too, no area, union or squared distance
    of the accuracy wraps around in that type, so Python's exact integers give numpy's results.
    """
    return 1 << 30 if np.dtype(int_dtype).itemsize >= 8 else 1 << 13


_FAST_INT_LIMIT = fast_int_limit(np.array([0]).dtype)
"""VisionReasoner accuracy: integer coordinates up to this size are scored in Python, as numpy scores them.

What follows is the int64 case (2**30); where numpy's arrays of ints are int32 the limit is 2**13
(:func:`fast_int_limit`). numpy holds them in int64 arrays, where areas and squared distances stay
below 2**63 (no wrap-around), or in float64 arrays beside a float, where every such int is exact.
Python's exact integer products differ from float64's rounded ones only beyond 2**53, for a box with
a coordinate beyond 2**24: its IoU with a ground-truth box in the image frame is then 0 or tiny, its
L1 far above 10, so no threshold can tell the two apart (the ground truth is checked to be within
2**20). Larger ints are scored in Python too when numpy makes a float64 array of them (beside a
float, say: see :func:`_as_numpy_holds`); otherwise (int64 overflow, uint64 and object arrays) they
go to numpy."""

_EXACT_LIMIT = float(1 << 20)
"""Coordinates up to this size give the same Seg-Zero terms in float and in integer arithmetic."""

_VR_GT_LIMIT = min(_EXACT_LIMIT, _FAST_INT_LIMIT)
"""VisionReasoner accuracy is scored in Python only for a ground truth within this size (2**20; with
int32 arrays, 2**13)."""

Coords = Sequence[float]

_NO_ARITHMETIC = frozenset({str, type(None)})
"""JSON value types that Python's and numpy's arithmetic on coordinates refuse (a string makes a string
array, ``null`` an object one): a box or point holding one scores 0 upstream, which reaches 0 by raising."""

_SEG_ZERO = AnswerSchema.SEG_ZERO
_sqrt = math.sqrt
_ANSWER_OPEN = "<answer>"
_ANSWER_CLOSE = "</answer>"


def first_brace_block(text: str) -> str | None:
    """The first match of ``{[^}]+}`` in ``text`` (Seg-Zero's answer), found in one linear scan.

    >>> first_brace_block('<think>a {b} c</think><answer>{"bbox": [1]}</answer>')
    '{b}'
    >>> first_brace_block("{}{x}"), first_brace_block("{ no close")
    ('{x}', None)
    """
    start = 0
    while True:
        p = text.find("{", start)
        if p < 0:
            return None
        q = text.find("}", p + 1)
        if q < 0:
            return None
        if q > p + 1:
            return text[p : q + 1]
        start = q + 1  # "{}" matches nothing at p; the next "{" comes after q


def answer_block(text: str) -> str | None:
    r"""Group 1 of ``<answer>\s*(.*?)\s*</answer>`` (DOTALL) in ``text`` (VisionReasoner's answer).

    >>> answer_block("x <answer>\n [1] \n</answer> <answer>2</answer>")
    '[1]'
    """
    open_at = text.find(_ANSWER_OPEN)
    if open_at < 0:
        return None
    start = open_at + len(_ANSWER_OPEN)
    end = text.find(_ANSWER_CLOSE, start)
    if end < 0:
        return None
    return text[start:end].strip()  # str.strip and the regex's \s share one definition of whitespace


_JSON_START = frozenset('{["-0123456789tfnNI \t\n\r')
"""Characters a text that :func:`json.loads` accepts can start with (a value, or whitespace before it)."""


def _decode(text: str | None, parsed: ParsedReply | None) -> Any:
    """``json.loads(text)``, or :data:`_NO_VALUE` when it raises (upstream catches everything).

    Free when ``parsed`` holds the parser's reading of the same text.
    """
    if not text or text[0] not in _JSON_START:
        return _NO_VALUE  # json.loads would raise at the first character (a code fence, say)
    read = None if parsed is None else parsed._json
    if read is not None and read[0] == text:
        return read[1] if read[2] else _NO_VALUE
    value, error, _ = decode(text)
    return _NO_VALUE if error is not None else value  # RecursionError included


def _canonical_numbers(text: str, parsed: ParsedReply) -> tuple[str, ...] | None:
    """:func:`~segzero_env.parsing_fast.canonical_numbers`, free when ``parsed`` has checked the same text."""
    checked = parsed._canonical
    if checked is not None and checked[0] == text:
        return checked[1]
    return canonical_numbers(text)


class UpstreamReading:
    """What the upstream rules read from one reply, decoded once and shared by every term.

    Attributes:
        reply: The raw reply.
        think_format: The raw reply fully matches the think-then-answer layout.
        seg_zero_value: The decoded first ``{...}`` (a dict), or ``None`` when absent or not JSON.
        vr_value: The decoded answer-tag text, or ``None`` when absent or not JSON. Both values are
            shared, never modified.
    """

    __slots__ = ("reply", "think_format", "seg_zero_value", "vr_value")

    def __init__(self, reply: str, think_format: bool, seg_zero_value: dict | None, vr_value: Any) -> None:
        self.reply = reply
        self.think_format = think_format
        self.seg_zero_value = seg_zero_value
        self.vr_value = vr_value


def read_upstream(reply: str, parsed: ParsedReply | None = None) -> UpstreamReading:
    """Read a reply the way both upstream rewards do.

    Args:
        reply: The raw reply.
        parsed: ``parse_reply(reply)``, when known. Its ``think_format`` (on the stripped reply), when
            True, decides the raw reply's layout without a scan (it matches exactly when no whitespace
            surrounds it); its ``answer_text`` of a reply with an answer tag is :func:`answer_block`'s
            text (``None`` when unclosed) unless it was cut.
    """
    stripped_think_format = parsed is not None and parsed.think_format
    sz_text = _seg_zero_text(reply)
    if (
        parsed is not None
        and parsed.n_answer_tags
        and (parsed.answer_text is None or len(parsed.answer_text) < ANSWER_TEXT_CHARS)
    ):
        vr_text = parsed.answer_text
    else:
        vr_text = answer_block(reply)
    sz = _decode(sz_text, parsed)
    vr = sz if vr_text == sz_text else _decode(vr_text, parsed)  # usually the same text: decode it once
    think = _raw_think_format(reply, parsed) if stripped_think_format else think_format_ok(reply)  # type: ignore[arg-type]
    return UpstreamReading(reply, think, sz if isinstance(sz, dict) else None, None if vr is _NO_VALUE else vr)


def _raw_think_format(reply: str, parsed: ParsedReply) -> bool:
    """Whether the raw reply has the think-then-answer layout, from ``parsed`` (read on the stripped reply).

    A stripped match is a raw match unless whitespace surrounds the reply; without a stripped match
    there is no raw one (a raw match starts with ``<think>`` and ends with ``</answer>``: stripping
    leaves it as it is).
    """
    return parsed.think_format and not (reply[0].isspace() or reply[-1].isspace())


def _seg_zero_text(reply: str) -> str | None:
    """Seg-Zero's answer text, the first ``{...}``; ``None`` when there is none, or none with a ``bbox`` key.

    Without a ``"bbox"`` in it (none can hide behind an escape) every Seg-Zero term is 0.
    """
    text = first_brace_block(reply)
    if text is not None and '"bbox"' not in text and "\\" not in text:
        return None
    return text


@functools.lru_cache(maxsize=4096)
def _upstream_gt(values: tuple) -> tuple:
    return tuple(int(v) if float(v).is_integer() else v for v in values)


def upstream_gt(values: Sequence[float]) -> tuple[float | int, ...]:
    """Ground-truth coordinates as upstream holds them: integers (its ground truth is written with them).

    An integral float becomes an int so that arithmetic with huge predicted integers stays exact, as it
    does upstream; other values are kept. (Cached: a GRPO group shares its ground truth, and the same
    tuple object is recognised without being hashed again.)
    """
    hit = _gt_by_id.get(id(values))
    if hit is not None and hit[0] is values:
        return hit[1]
    result = _upstream_gt(tuple(values))
    if type(values) is tuple:  # immutable: safe to recognise by identity (the entry keeps it alive)
        if len(_gt_by_id) >= 64:
            _gt_by_id.clear()
        _gt_by_id[id(values)] = (values, result)
    return result


_gt_by_id: dict[int, tuple[tuple, tuple]] = {}


# --------------------------------------------------------------------------- Seg-Zero


def seg_zero_terms(
    reading: UpstreamReading, gt_box: Sequence[float] | None, gt_points: Sequence[Sequence[float]] | None
) -> tuple[float, float, float, float]:
    """Seg-Zero's ``answer_format``, ``box_iou``, ``box_l1`` and ``points`` for one reply.

    * ``answer_format``: the first ``{...}`` is JSON with ``bbox`` a list of 4 and both points lists of 2.
    * ``box_iou``: IoU(bbox, GT) > 0.5 with inclusive areas and an overlap only when strictly positive.
    * ``box_l1``: the mean absolute difference of the 4 coordinates, as written, is below 10.
    * ``points``: both ``int()``-truncated points lie in ``bbox`` and their best-order mean distance
      to the GT points is below 100.

    A term is 0 when upstream's code would raise (missing keys, strings, ``None``, zero unions, ...).
    """
    return _seg_zero_value_terms(reading.seg_zero_value, gt_box, gt_points)


def _seg_zero_value_terms(
    data: dict | None, gt_box: Sequence[float] | None, gt_points: Sequence[Sequence[float]] | None
) -> tuple[float, float, float, float]:
    """:func:`seg_zero_terms` of the decoded first ``{...}`` (``None`` when absent or not a JSON object)."""
    if data is None:
        return 0.0, 0.0, 0.0, 0.0
    box = data.get("bbox")
    p1, p2 = data.get("points_1"), data.get("points_2")
    answer_format = (
        1.0
        if type(box) is list
        and len(box) == 4
        and type(p1) is list
        and len(p1) == 2
        and type(p2) is list
        and len(p2) == 2
        and "points_1" in data  # .get() cannot tell a missing key from a null value
        and "points_2" in data
        else 0.0
    )
    try:
        if len(box) != 4:
            return answer_format, 0.0, 0.0, 0.0
    except TypeError:  # no bbox key (None) or a number
        return answer_format, 0.0, 0.0, 0.0
    iou = l1 = points = 0.0
    if not _NO_ARITHMETIC.isdisjoint(map(type, box)):
        # A string or null in the box: every accuracy term compares or subtracts all four values, so
        # upstream raises (scores 0) on each; settled here without raising three exceptions.
        return answer_format, 0.0, 0.0, 0.0
    ga = gb = None
    if gt_points is not None and len(gt_points) >= 2:
        if gt_box is not None:
            g, ga, gb = _ground_truth(gt_box, gt_points)[:3]  # one lookup for a group's shared ground truth
        else:
            g, ga, gb = None, upstream_gt(gt_points[0]), upstream_gt(gt_points[1])
    else:
        g = None if gt_box is None else upstream_gt(gt_box)
    if g is not None:
        g0, g1, g2, g3 = g
        b0, b1, b2, b3 = box  # a list of 4 (a string's or an object's items returned above)
        try:
            # max(a, b) is "b if b > a else a" and min(a, b) "b if b < a else a": the builtins exactly,
            # NaN and the errors of incomparable values included.
            ix1, iy1 = (g0 if g0 > b0 else b0), (g1 if g1 > b1 else b1)
            ix2, iy2 = (g2 if g2 < b2 else b2), (g3 if g3 < b3 else b3)
            inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
            area_pred = (b2 - b0 + 1) * (b3 - b1 + 1)
            area_gt = (g2 - g0 + 1) * (g3 - g1 + 1)
            iou = 1.0 if float(inter) / (area_pred + area_gt - inter) > 0.5 else 0.0
        except Exception:  # noqa: BLE001 - lists, zero unions, overflow: upstream scores 0
            pass
        try:
            total = abs(b0 - g0) + abs(b1 - g1) + abs(b2 - g2) + abs(b3 - g3)
            l1 = 1.0 if total / 4 < 10 else 0.0
        except Exception:  # noqa: BLE001
            pass
    if ga is not None and "points_1" in data and "points_2" in data:
        points = _seg_zero_points(box, p1, p2, ga, gb)
    return answer_format, iou, l1, points


def canonical_seg_zero_terms(
    reply: str, parsed: ParsedReply, gt_box: Sequence[float] | None, gt_points: Sequence[Sequence[float]] | None
) -> tuple[float, float, float, float, float] | None:
    """:func:`seg_zero_terms` and the think format for a reply whose answer is canonical, from the parse.

    A canonical answer (:mod:`segzero_env.parsing_fast`) that is also the reply's first ``{...}``
    decodes to exactly the parser's numbers (an inverted box's to its literals, which the parser has
    swapped), so the terms come from them without reading the reply again. Its integers are below
    10**7 (and the ground truth's below 2**20 is checked), so float arithmetic on them gives
    upstream's integer results exactly.

    Any other answer that is a JSON object is scored from its decoded value (:func:`_object_answer_terms`).

    Returns:
        ``(think_format, answer_format, box_iou, box_l1, points)``, or ``None`` when the reply is not
        such a reply (the caller then takes the general path).
    """
    text = parsed.answer_text
    if text is None or not parsed.n_answer_tags or gt_box is None or not gt_points or len(gt_points) < 2:
        return None
    if not text.startswith("{"):
        return None  # not a JSON object
    if (
        parsed.schema is not _SEG_ZERO
        or parsed.failure is not None
        or not parsed.strict_json
        or not reply.startswith(text, reply.find("{"))
    ):
        return _object_answer_terms(reply, parsed, text, gt_box, gt_points)
    literals = _canonical_numbers(text, parsed)
    if literals is None:
        return _object_answer_terms(reply, parsed, text, gt_box, gt_points)
    (gx1, gy1, gx2, gy2), (g1x, g1y), (g2x, g2y), area_gt, integral_gt, small = _ground_truth(gt_box, gt_points)
    if not small:
        return _object_answer_terms(reply, parsed, text, gt_box, gt_points)
    obj = parsed.objects[0]
    # The box as written (the parser swaps an inverted one's corners; upstream does not). Its numbers
    # are below 10**7 when written as integers: float arithmetic on them is exact.
    x1, y1, x2, y2 = floats(literals[:4]) if parsed.box_inverted else obj.box
    think = 1.0 if _raw_think_format(reply, parsed) else 0.0
    # Finite values: max(a, b) is "b if b > a else a" and min(a, b) "b if b < a else a", as the builtins.
    ix1, iy1 = (gx1 if gx1 > x1 else x1), (gy1 if gy1 > y1 else y1)
    ix2, iy2 = (gx2 if gx2 < x2 else x2), (gy2 if gy2 < y2 else y2)
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    union = (x2 - x1 + 1) * (y2 - y1 + 1) + area_gt - inter
    iou = 1.0 if union != 0 and inter / union > 0.5 else 0.0
    l1 = 1.0 if (abs(x1 - gx1) + abs(y1 - gy1) + abs(x2 - gx2) + abs(y2 - gy2)) / 4 < 10 else 0.0
    (p1x, p1y), (p2x, p2y) = obj.points
    ax, ay, bx, by = int(p1x), int(p1y), int(p2x), int(p2y)
    points = 0.0
    if x1 <= ax <= x2 and y1 <= ay <= y2 and x1 <= bx <= x2 and y1 <= by <= y2:
        # min(straight, crossed) / 2 < 100; the ground truth is small, so nothing here can overflow.
        if integral_gt:  # integers: d * d is exactly upstream's d ** 2, and faster
            d1, d2, d3, d4 = ax - g1x, ay - g1y, bx - g2x, by - g2y
            straight = _sqrt(d1 * d1 + d2 * d2) + _sqrt(d3 * d3 + d4 * d4)
        else:
            straight = _sqrt((ax - g1x) ** 2 + (ay - g1y) ** 2) + _sqrt((bx - g2x) ** 2 + (by - g2y) ** 2)
        if straight / 2 < 100:
            points = 1.0
        else:
            crossed = _sqrt((ax - g2x) ** 2 + (ay - g2y) ** 2) + _sqrt((bx - g1x) ** 2 + (by - g1y) ** 2)
            points = 1.0 if crossed / 2 < 100 else 0.0
    return think, 1.0, iou, l1, points


def _object_answer_terms(
    reply: str, parsed: ParsedReply, text: str, gt_box: Sequence[float], gt_points: Sequence[Sequence[float]]
) -> tuple[float, float, float, float, float] | None:
    """:func:`canonical_seg_zero_terms` for any answer that is a JSON object; ``None`` for other answers.

    ``text`` is the answer-tag text, which VisionReasoner reads (the parser keeps it whole below
    :data:`~segzero_env.parsing.ANSWER_TEXT_CHARS`); its value (the parser's, when ``parsed`` holds
    it: ``ParsedReply._json``) is an object, so VisionReasoner's loop
    over it meets its keys, strings, where a ``bbox_2d`` or ``point_2d`` test is a substring test and
    the indexing that follows a match raises: ``vr_format`` is the think format alone, and
    ``vr_accuracy`` (which needs a list) is 0. Seg-Zero reads the reply's first ``{...}``: the same
    text, already decoded, when it starts at the reply's first ``{`` and its only ``}`` is its last
    character; otherwise that text, read as :func:`read_upstream` reads it.
    """
    if len(text) >= ANSWER_TEXT_CHARS:
        return None
    value = _decode(text, parsed)
    if type(value) is not dict:
        return None  # not a JSON object (not JSON at all, say): the general path reads it
    if len(text) > 2 and text.find("}") == len(text) - 1 and reply.startswith(text, reply.find("{")):
        seg_zero = value  # ("{}" is not a first "{...}": Seg-Zero reads a later one)
    else:
        seg_zero = _decode(_seg_zero_text(reply), parsed)
        if type(seg_zero) is not dict:
            seg_zero = None
    think = 1.0 if _raw_think_format(reply, parsed) else 0.0
    answer_format, iou, l1, points = _seg_zero_value_terms(seg_zero, gt_box, gt_points)
    return think, answer_format, iou, l1, points


_TUPLE_OR_NONE = (tuple, type(None))


def _immutable(box: Any, points: Any, objects: Any = None) -> bool:
    """Whether a ground truth can be recognised by identity: tuples (or ``None``) all the way down.

    A remembered result is reused for the same objects only when they cannot change in between.
    """
    return (
        type(box) in _TUPLE_OR_NONE
        and type(objects) in _TUPLE_OR_NONE
        and (points is None or (type(points) is tuple and all(type(p) is tuple for p in points)))
    )


_last_gt: tuple[Any, Any, tuple | None] = (None, None, None)
"""The last ground truth :func:`_ground_truth` read, by identity, and its result."""


def _ground_truth(box: Sequence[float], points: Sequence[Sequence[float]]) -> tuple:
    """The ground truth as upstream holds it, with its box's inclusive area and two flags.

    Returns ``(box, point 1, point 2, area, all integers, every value within 2**20)``; the area is
    ``None`` beyond 2**20. Remembered for the same tuples: a GRPO group shares its ground truth.
    """
    global _last_gt
    last = _last_gt
    if box is last[0] and points is last[1]:
        return last[2]  # type: ignore[return-value]  # the same tuples (a group's episode): unchanged
    g, g1, g2 = upstream_gt(box), upstream_gt(points[0]), upstream_gt(points[1])
    small = max(abs(v) for part in (g, g1, g2) for v in part) <= _EXACT_LIMIT
    integral = all(type(v) is int for part in (g, g1, g2) for v in part)
    area = (g[2] - g[0] + 1) * (g[3] - g[1] + 1) if small else None
    result = (g, g1, g2, area, integral, small)
    if _immutable(box, points):
        _last_gt = (box, points, result)
    return result


def _seg_zero_points(box: Any, p1: Any, p2: Any, g1: Sequence[float], g2: Sequence[float]) -> float:
    try:
        a = [int(p1[0]), int(p1[1])]
        b = [int(p2[0]), int(p2[1])]
        inside = box[0] <= a[0] <= box[2] and box[1] <= a[1] <= box[3]
        if not (inside and box[0] <= b[0] <= box[2] and box[1] <= b[1] <= box[3]):
            return 0.0
        straight = math.sqrt((a[0] - g1[0]) ** 2 + (a[1] - g1[1]) ** 2) + math.sqrt(
            (b[0] - g2[0]) ** 2 + (b[1] - g2[1]) ** 2
        )
        crossed = math.sqrt((a[0] - g2[0]) ** 2 + (a[1] - g2[1]) ** 2) + math.sqrt(
            (b[0] - g1[0]) ** 2 + (b[1] - g1[1]) ** 2
        )
        return 1.0 if min(straight, crossed) / 2 < 100 else 0.0
    except Exception:  # noqa: BLE001 - int("x"), int(nan), comparisons with strings: upstream scores 0
        return 0.0


# --------------------------------------------------------------------------- VisionReasoner


def vr_format(reading: UpstreamReading) -> float:
    """Think format + per element ([bbox_2d list of 4] + [point_2d list of 2]) / #elements."""
    score = 0.0
    data = reading.vr_value
    if data is not None:
        try:
            count = len(data)
            for item in data:
                cur = 0.0
                # ``in`` and ``[]`` behave as upstream's on every JSON type: a key test on dicts, a
                # substring test on strings (whose indexing then raises), a TypeError on numbers.
                if "bbox_2d" in item:
                    box = item["bbox_2d"]
                    if isinstance(box, list) and len(box) == 4:
                        cur += 1.0
                if "point_2d" in item:
                    point = item["point_2d"]
                    if isinstance(point, list) and len(point) == 2:
                        cur += 1.0
                score += cur / count
        except Exception:  # noqa: BLE001 - upstream keeps what it had counted when an element breaks the loop
            pass
    return (1.0 if reading.think_format else 0.0) + score


def non_repeat(reply: str) -> float:
    """0.0 when two or more of the reply's ``.``-separated sentences repeat an earlier one, else 1.0."""
    parts = reply.split(".")
    n = len(parts)
    if n < 3:
        return 1.0  # two repeats need three sentences
    distinct = set(map(str.strip, parts))
    if n - len(distinct) < 2:
        return 1.0  # the repeats of non-empty sentences number at most n - len(distinct)
    sentences = list(map(str.strip, parts))
    empty = sentences.count("")
    repeats = (n - empty) - (len(distinct) - (1 if empty else 0))
    return 0.0 if repeats >= 2 else 1.0


_BOOL_BOX = frozenset({bool})
"""A box whose values are all of these types makes a bool array, which numpy cannot subtract."""


def _plain_numbers(values: list) -> bool:
    """Whether every value is a float, a bool or an int within :data:`_FAST_INT_LIMIT` (the Python scorer's domain)."""
    for v in values:
        t = type(v)
        if t is not float and t is not bool and (t is not int or not -_FAST_INT_LIMIT <= v <= _FAST_INT_LIMIT):
            return False
    return True


def _pair_score(box: Coords, point: Coords, gt_box: Coords, gt_point: Coords) -> int:
    x1, y1, x2, y2 = box
    g1, h1, g2, h2 = gt_box
    # numpy's minimum / maximum as plain comparisons: exact without NaN (the sides can still be NaN,
    # from inf - inf, and are clipped as numpy clips them). A NaN coordinate (never in the ground
    # truth) makes the box's area, the union and the IoU NaN, which no threshold passes, whatever
    # the overlap computed here.
    w = (x2 if x2 < g2 else g2) - (x1 if x1 > g1 else g1) + 1
    h = (y2 if y2 < h2 else h2) - (y1 if y1 > h1 else h1) + 1
    inter = (w if (w > 0 or w != w) else 0) * (h if (h > 0 or h != h) else 0)
    union = (x2 - x1 + 1) * (y2 - y1 + 1) + (g2 - g1 + 1) * (h2 - h1 + 1) - inter
    # In this scorer's domain (no int64 wrap-around) a zero union comes only without overlap (a
    # positive overlap bounds both areas from below), where numpy's 0 / 0 is NaN: no IoU passes.
    score = 1 if union != 0 and inter / union > 0.5 else 0
    if (abs(x1 - g1) + abs(y1 - h1) + abs(x2 - g2) + abs(y2 - h2)) / 4 < 10:
        score += 1
    px, py = point[0], point[1]
    dx, dy = px - gt_point[0], py - gt_point[1]
    inside = x1 <= px <= x2 and y1 <= py <= y2
    if inside and math.sqrt(dx * dx + dy * dy) < 30:
        score += 1
    return score


def _as_numpy_holds(boxes: list, points: list) -> tuple[list, list] | None:
    """The boxes and points as upstream's numpy arrays hold them, when the pure-Python scorer gives its result.

    That is when each array is float64 (numpy's own conversion of the values: a huge int beside a
    float, say, whose array type is numpy's choice) or an int64 array of values within
    :data:`_FAST_INT_LIMIT`; ``None`` otherwise (larger int64, int32, unsigned, object and bool arrays
    stay with numpy).
    """
    held = []
    for rows in (boxes, points):
        try:
            array = np.array(rows)
        except Exception:  # noqa: BLE001 - the numpy path raises the same way: upstream scores 0
            return None
        if array.dtype == np.float64:
            held.append(array.tolist())
        elif array.dtype == np.int64 and all(_plain_numbers(row) for row in rows):
            held.append(rows)
        else:
            return None
    return held[0], held[1]


def _score_matrix_numpy(boxes: list, points: list, gt_boxes: list, gt_points: list) -> np.ndarray | None:
    """The pair scores computed on numpy arrays of the values as written (exotic dtypes: big or odd numbers)."""
    try:
        with np.errstate(all="ignore"):
            pb, pp = np.array(boxes), np.array(points)
            gb, gp = np.array(gt_boxes), np.array(gt_points)
            x1, y1, x2, y2 = (pb[:, i : i + 1] for i in range(4))
            g1, h1, g2, h2 = (gb[:, i : i + 1].T for i in range(4))
            inter = np.maximum(0, np.minimum(x2, g2) - np.maximum(x1, g1) + 1) * np.maximum(
                0, np.minimum(y2, h2) - np.maximum(y1, h1) + 1
            )
            union = (x2 - x1 + 1) * (y2 - y1 + 1) + ((g2 - g1 + 1) * (h2 - h1 + 1)) - inter
            iou_ok = (inter / union) > 0.5
            l1_ok = np.mean(np.abs(pb[:, None, :] - gb[None, :, :]), axis=2) < 10
            near = np.sqrt(np.sum((pp[:, None, :] - gp[None, :, :]) ** 2, axis=2)) < 30
            inside = (pp[:, 0] >= pb[:, 0]) & (pp[:, 0] <= pb[:, 2]) & (pp[:, 1] >= pb[:, 1]) & (pp[:, 1] <= pb[:, 3])
            scores = iou_ok.astype(float) + l1_ok.astype(float) + (near & inside[:, None]).astype(float)
            return scores if scores.shape == (len(boxes), len(gt_boxes)) else None
    except Exception:  # noqa: BLE001 - upstream scores 0 when numpy refuses the values
        return None


def vr_ground_truth(
    gt_box: Sequence[float] | None,
    gt_points: Sequence[Sequence[float]] | None,
    gt_objects: Sequence[ObjectAnswer] | None,
) -> tuple[tuple, tuple, bool] | None:
    """The ground truth as VisionReasoner's accuracy holds it: ``(boxes, points, small)``, at most 120 objects.

    The objects are ``gt_objects`` (each one's first point), else the one ``(gt_box, gt_points[0])``;
    their numbers are upstream's (:func:`upstream_gt`); ``small``: all of them are within
    :data:`_VR_GT_LIMIT` (the pure-Python scorer's domain). ``None`` when there is no object or one
    lacks a 2-value point (the term is then 0; upstream's ground truth always has one). Remembered for
    the same tuples: a GRPO group shares its ground truth.
    """
    global _last_vr_gt
    last = _last_vr_gt
    if gt_box is last[0] and gt_points is last[1] and gt_objects is last[2]:
        return last[3]
    if gt_objects is not None:
        objects = [(o.box, o.points[0] if o.points else None) for o in gt_objects[:VR_MAX_OBJECTS]]
    elif gt_box is not None:
        objects = [(gt_box, gt_points[0] if gt_points else None)]
    else:
        objects = []
    result: tuple[tuple, tuple, bool] | None = None
    if objects and all(point is not None and len(point) == 2 for _, point in objects):
        boxes, points = tuple(upstream_gt(box) for box, _ in objects), tuple(upstream_gt(point) for _, point in objects)
        small = all(abs(v) <= _VR_GT_LIMIT for part in (*boxes, *points) for v in part)  # NaN is not small
        result = boxes, points, small
    if _immutable(gt_box, gt_points, gt_objects):
        _last_vr_gt = (gt_box, gt_points, gt_objects, result)
    return result


_last_vr_gt: tuple[Any, Any, Any, tuple[tuple, tuple, bool] | None] = (None, None, None, None)
"""The last ground truth :func:`vr_ground_truth` read, by identity, and its result."""


def vr_accuracy(reading: UpstreamReading, ground_truth: tuple[tuple, tuple, bool] | None) -> float:
    """Hungarian-matched accuracy over at most 120 predictions, 0 when any element lacks a key or a number.

    Args:
        reading: The reply as upstream reads it.
        ground_truth: :func:`vr_ground_truth`'s boxes and points.
    """
    data = reading.vr_value
    if type(data) is not list or not data or not ground_truth:
        return 0.0
    boxes, points = [], []
    fast = all_bool = True
    for item in data:  # every element is read before the cut at 120, as upstream does
        if type(item) is not dict:
            return 0.0
        box, point = item.get("bbox_2d", _NO_VALUE), item.get("point_2d", _NO_VALUE)
        if box is _NO_VALUE or point is _NO_VALUE:
            return 0.0
        if len(boxes) == VR_MAX_OBJECTS:
            continue
        if type(box) is not list or len(box) != 4 or type(point) is not list or len(point) != 2:
            return 0.0  # numpy cannot build (M, 4) and (M, 2) arrays: upstream raises
        if fast:
            fast = _plain_numbers(box) and _plain_numbers(point)
            all_bool = all_bool and type(box[0]) is bool and _BOOL_BOX.issuperset(map(type, box))
        if not fast and not _NO_ARITHMETIC.isdisjoint(map(type, (*box, *point))):
            return 0.0  # every coordinate enters the numpy arithmetic, which a string or null makes raise
        boxes.append(box)
        points.append(point)
    gt_boxes, gt_points, small_gt = ground_truth
    if not small_gt or all_bool:
        fast = False  # a large ground truth leaves Python's domain; an all-bool box array cannot be subtracted
    elif not fast:
        held = _as_numpy_holds(boxes, points)
        if held is not None:
            (boxes, points), fast = held, True
    if fast and len(gt_boxes) == 1:  # one ground-truth object: the best assignment is the best prediction
        gb, gp = gt_boxes[0], gt_points[0]
        return max([_pair_score(b, p, gb, gp) for b, p in zip(boxes, points, strict=True)]) / len(boxes)
    if fast:
        scores = [
            [_pair_score(b, p, gb, gp) for gb, gp in zip(gt_boxes, gt_points, strict=True)]
            for b, p in zip(boxes, points, strict=True)
        ]
        matrix = None
    else:
        matrix = _score_matrix_numpy(boxes, points, gt_boxes, gt_points)
        if matrix is None:
            return 0.0
        scores = matrix.tolist()
    n_pred, n_gt = len(boxes), len(gt_boxes)
    if n_pred == 1 or n_gt == 1:
        best = max(max(row) for row in scores)
    else:
        from scipy.optimize import linear_sum_assignment

        m = np.asarray(scores, dtype=float) if matrix is None else matrix
        rows, cols = linear_sum_assignment(3.0 - m)
        best = float(m[rows, cols].sum())
    return best / max(n_pred, n_gt)

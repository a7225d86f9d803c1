"""Schema readers for :func:`segzero_env.parsing.parse_reply`: decoded answer values in, typed objects out.

Each reader walks one answer schema (the Seg-Zero dict, the VisionReasoner / Qwen grounding list, the
refinement dict) and returns :class:`~segzero_env.types.ObjectAnswer` tuples, or a
:class:`ParseError` with the failure reason and a detail naming the key: returned by the Seg-Zero and
list readers (bad answers are common, and raising costs as much as reading), raised by the refinement
reader. The grammar they implement is documented once, in :mod:`segzero_env.parsing`; only the parser
calls them.
"""

from __future__ import annotations

from typing import Any

from segzero_env.types import AnswerSchema, FailureReason, ObjectAnswer, Refinement

MAX_CLICKS = 64
"""A refinement's ``positive_points`` / ``negative_points`` may hold at most this many clicks each."""

REFINE_KEYS = frozenset({"positive_points", "negative_points", "stop"})
"""Keys that make a dict answer a refinement."""


class ParseError(Exception):
    """A typed failure found in the decoded answer (returned or raised); the parser makes it a ParsedReply.

    ``ParseError(reason, detail)``: both are kept in ``args`` (built by the exception's own
    constructor, with no Python ``__init__``: failures are common); ``str()`` is the detail.

    >>> err = ParseError(FailureReason.WRONG_LENGTH, "bbox has 3 values, expected 4")
    >>> err.reason.value, err.detail, str(err)
    ('wrong_length', 'bbox has 3 values, expected 4', 'bbox has 3 values, expected 4')
    """

    @property
    def reason(self) -> FailureReason:
        """Why the answer is unusable."""
        return self.args[0]

    @property
    def detail(self) -> str:
        """What was wrong, naming the key."""
        return self.args[1]

    def __str__(self) -> str:
        return self.args[1]


def short_repr(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for failure details."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def numbers(value: Any, n: int, key: str | None = None) -> tuple[float, ...] | ParseError | None:
    """The ``n`` finite numbers of a list, as floats, or the failure of the first bad value, returned.

    Nothing is raised (a policy's bad answers are common, and raising costs as much as the reading):
    the caller raises or reports the failure. Its detail starts with ``key``; bools, strings,
    ``None``, NaN, infinities and ints too large for a float are refused. Without a ``key`` a failure
    is ``None`` and no detail is built (the validity check of a list's elements after a failing one).

    >>> numbers([1, 2.5], 2, "p")
    (1.0, 2.5)
    >>> numbers([1, True], 2, "p").detail, numbers([1, float("nan")], 2, "p").reason.value
    ('p[1] is bool True, expected a number', 'non_finite')
    >>> numbers([1, True], 2) is None
    True
    """
    if type(value) is not list and not isinstance(value, (list, tuple)):
        if key is None:
            return None
        return ParseError(FailureReason.WRONG_TYPE, f"{key} must be a list of {n} numbers, got {type(value).__name__}")
    if len(value) != n:
        if key is None:
            return None
        return ParseError(FailureReason.WRONG_LENGTH, f"{key} has {len(value)} values, expected {n}")
    out = []
    for v in value:
        t = type(v)
        if t is float:
            f = v
        elif t is int or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            try:
                f = float(v)
            except OverflowError:
                if key is None:
                    return None
                return ParseError(FailureReason.NON_FINITE, f"{key}[{len(out)}] is too large for a float")
        else:
            if key is None:
                return None
            return ParseError(
                FailureReason.NOT_A_NUMBER, f"{key}[{len(out)}] is {t.__name__} {short_repr(v)}, expected a number"
            )
        if f - f != 0.0:  # inf - inf and nan - nan are nan
            if key is None:
                return None
            return ParseError(FailureReason.NON_FINITE, f"{key}[{len(out)}] is {f}")
        out.append(f)
    return tuple(out)


def read_numbers(value: Any, n: int, key: str) -> tuple[float, ...]:
    """Read exactly ``n`` finite numbers from a list, or raise :func:`numbers`' failure naming ``key``."""
    result = numbers(value, n, key)
    if type(result) is ParseError:
        raise result
    return result  # type: ignore[return-value]


def read_box(value: Any, key: str) -> tuple[tuple[float, float, float, float], bool]:
    """Read a box ``[x1, y1, x2, y2]``, swapping inverted corners; returns the box and whether it was inverted."""
    return upright_box(read_numbers(value, 4, key))


def upright_box(box: tuple[float, ...]) -> tuple[tuple[float, float, float, float], bool]:
    """``(box with x1 <= x2 and y1 <= y2, whether corners were swapped)`` for four finite numbers."""
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), True
    return (x1, y1, x2, y2), False


def read_point(value: Any, key: str) -> tuple[float, float]:
    """Read a point ``[x, y]``."""
    x, y = read_numbers(value, 2, key)
    return (x, y)


def read_seg_zero(value: dict) -> tuple[tuple[ObjectAnswer, ...], bool] | ParseError:
    """Read Seg-Zero's ``{"bbox", "points_1", "points_2"}`` answer: its one object and the inverted flag.

    The failure of the first bad key is returned, not raised.
    """
    box = numbers(value["bbox"], 4, "bbox")
    if type(box) is ParseError:
        return box
    for key in ("points_1", "points_2"):
        if key not in value:
            return ParseError(
                FailureReason.MISSING_KEY, f"answer has no {key!r} key (Seg-Zero answers need bbox, points_1, points_2)"
            )
    p1 = numbers(value["points_1"], 2, "points_1")
    if type(p1) is ParseError:
        return p1
    p2 = numbers(value["points_2"], 2, "points_2")
    if type(p2) is ParseError:
        return p2
    upright, inverted = upright_box(box)  # type: ignore[arg-type]
    return (ObjectAnswer.fast(upright, (p1, p2)),), inverted


def read_point_list(value: Any, key: str) -> tuple[tuple[float, float], ...]:
    """Read a list of at most :data:`MAX_CLICKS` ``[x, y]`` clicks."""
    if not isinstance(value, (list, tuple)):
        raise ParseError(FailureReason.WRONG_TYPE, f"{key} must be a list of [x, y] pairs, got {type(value).__name__}")
    if len(value) > MAX_CLICKS:
        raise ParseError(FailureReason.WRONG_LENGTH, f"{key} has {len(value)} clicks, at most {MAX_CLICKS} allowed")
    if len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ParseError(FailureReason.WRONG_TYPE, f"{key} must be a list of [x, y] pairs; wrap one click: [[x, y]]")
    return tuple(read_point(v, f"{key}[{i}]") for i, v in enumerate(value))


def read_refinement(value: dict) -> tuple[tuple[ObjectAnswer, ...], bool, AnswerSchema, Refinement, bool]:
    """Read a refinement answer: objects (empty without a box), inverted flag, schema, clicks, stop."""
    stop = value.get("stop", False)
    if type(stop) is not bool:
        raise ParseError(FailureReason.WRONG_TYPE, f"stop must be true or false, got {short_repr(stop)}")
    box, inverted = read_box(value["bbox"], "bbox") if "bbox" in value else (None, False)
    named = tuple(read_point(value[key], key) for key in ("points_1", "points_2") if key in value)
    positives = named + read_point_list(value.get("positive_points", []), "positive_points")
    negatives = read_point_list(value.get("negative_points", []), "negative_points")
    if box is None and not positives and not negatives and not stop:
        raise ParseError(
            FailureReason.MISSING_KEY,
            'refinement answer has no bbox, no clicks and no "stop": true; add positive_points or negative_points',
        )
    seg_zero = "bbox" in value and "points_1" in value and "points_2" in value
    schema = AnswerSchema.SEG_ZERO if seg_zero else AnswerSchema.REFINE
    objects = () if box is None else (ObjectAnswer(box=box, points=positives, negative_points=negatives),)
    return objects, inverted, schema, Refinement(box, positives, negatives), stop


def read_object_list(
    items: list | tuple,
) -> tuple[tuple[ObjectAnswer, ...], bool, AnswerSchema, tuple[tuple[bool, bool], ...], ParseError | None]:
    """Read a list of ``bbox_2d`` objects; every element is checked so the format reward can count them.

    Returns the objects read before the first failing element, whether a box was inverted, the
    schema (VisionReasoner when every element has ``point_2d``; not meaningful after a failure), one
    ``(bbox_2d valid, point_2d valid)`` pair per element, and the first failing element's failure
    (``None`` when all are valid).
    """
    objects: list[ObjectAnswer] = []
    checks: list[tuple[bool, bool]] = []
    inverted = False
    all_points = True
    box: tuple[float, ...] | ParseError | None
    point: tuple[float, ...] | ParseError | None
    for i, item in enumerate(items):
        if type(item) is not dict:
            box = point = None
        else:  # the quick reading (no failure detail is built unless the element fails)
            box = numbers(item.get("bbox_2d"), 4, "bbox_2d")
            point_value = item.get("point_2d", _ABSENT)
            point = () if point_value is _ABSENT else numbers(point_value, 2, "point_2d")
        if type(box) is not tuple or type(point) is not tuple:  # the answer fails: later elements only count
            failure, box_ok, point_ok = _element_failure(item, i, box, point)
            checks.append((box_ok, point_ok))
            checks.extend(map(_item_validity, items[i + 1 :]))
            return tuple(objects), inverted, AnswerSchema.VISION_REASONER, tuple(checks), failure
        box, box_inverted = upright_box(box)  # type: ignore[arg-type]
        inverted = inverted or box_inverted
        if point:
            objects.append(ObjectAnswer.fast(box, (point,)))
            checks.append(_BOTH_VALID)
        else:
            objects.append(ObjectAnswer.fast(box))
            checks.append(_BOX_VALID)
            all_points = False
    schema = AnswerSchema.VISION_REASONER if all_points else AnswerSchema.QWEN_GROUNDING
    return tuple(objects), inverted, schema, tuple(checks), None


_ABSENT = object()
_BOTH_VALID = (True, True)
_BOX_VALID = (True, False)


def _element_failure(item: Any, i: int, box: Any, point: Any) -> tuple[ParseError, bool, bool]:
    """Why list element ``i`` is not a valid object: ``(failure, bbox_2d valid, point_2d valid)``.

    ``box`` and ``point`` are the element's readings by :func:`numbers` (``point`` ``()`` when absent,
    both ``None`` when the element is not a dict). A bad box is reported before a bad point; the detail
    names the element and the key.
    """
    if not isinstance(item, dict):
        return ParseError(FailureReason.WRONG_TYPE, f"[{i}] is {type(item).__name__}, expected an object"), False, False
    if "bbox_2d" not in item:
        return ParseError(FailureReason.MISSING_KEY, f"[{i}] has no 'bbox_2d' key"), False, False
    box_ok, point_ok = type(box) is tuple, type(point) is tuple and len(point) > 0
    failure = point if box_ok else box
    return ParseError(failure.reason, f"[{i}].{failure.detail}"), box_ok, point_ok


def _item_validity(item: Any) -> tuple[bool, bool]:
    """``(bbox_2d valid, point_2d valid)`` of a list element, as :func:`read_object_list` counts them."""
    if not isinstance(item, dict) or "bbox_2d" not in item:
        return False, False
    point_ok = "point_2d" in item and numbers(item["point_2d"], 2) is not None
    return numbers(item["bbox_2d"], 4) is not None, point_ok

r"""Writing well-formed replies: the inverse of :func:`segzero_env.parsing.parse_reply`.

Scripted policies, tests and examples build replies here instead of formatting answer strings by
hand, so that every reply this package writes reads back exactly.

>>> from segzero_env.parsing import parse_reply
>>> reply = format_reply(box=(10, 20, 110, 220), points=[(50, 60), (70, 180)])
>>> reply
'<think>...</think>\n<answer>{"bbox": [10, 20, 110, 220], "points_1": [50, 60], "points_2": [70, 180]}</answer>'
>>> parse_reply(reply).objects[0].box
(10.0, 20.0, 110.0, 220.0)
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence

import numpy as np

from segzero_env.types import AnswerSchema, ObjectAnswer

_FORBIDDEN_IN_THINK = ("<think>", "</think>", "<answer>", "</answer>")


def _coords(values: Sequence[float], n: int, what: str) -> list[float]:
    if len(values) != n:
        raise ValueError(f"format_reply: {what} needs {n} numbers, got {len(values)}: {values!r}")
    out: list[float] = []
    for v in values:
        # numpy scalars are welcome (they register as numbers.Real); bools are not numbers here.
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"format_reply: {what} must hold finite numbers, got {v!r}")
        v = int(v) if isinstance(v, numbers.Integral) else float(v)
        # Integral floats are written as ints, as a model would; the parser reads both as floats.
        out.append(int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**53 else v)
    return out


def format_reply(
    objects: Sequence[ObjectAnswer] | None = None,
    *,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] = (),
    schema: AnswerSchema | str = AnswerSchema.SEG_ZERO,
    think: str = "...",
    label: str = "target",
) -> str:
    """Write a reply that :func:`~segzero_env.parsing.parse_reply` reads back to the same objects.

    Args:
        objects: The objects to answer with. Give either ``objects`` or ``box`` (+ ``points``). An empty
            list writes the "no object" answer ``[]`` (``seg-zero`` and ``vision-reasoner``).
        box: A single object's box ``(x1, y1, x2, y2)``.
        points: That object's points.
        schema: ``"seg-zero"`` (one object with exactly two points), ``"vision-reasoner"`` (each
            object with exactly one point) or ``"qwen-grounding"`` (a fenced JSON list without
            think/answer tags, as Qwen2.5-VL writes it; objects with zero or one point).
        think: Text inside ``<think>...</think>`` (ignored for ``qwen-grounding``); must not
            contain think or answer tags.
        label: The ``label`` written for each object by ``qwen-grounding``.

    Returns:
        The reply text.

    Raises:
        ValueError: If the objects do not fit the schema, or coordinates are not finite numbers.
    """
    if (objects is None) == (box is None):
        raise ValueError("format_reply: give either objects or box (with points), not both and not neither")
    if objects is None:
        assert box is not None
        objects = [ObjectAnswer(box=tuple(box), points=tuple(tuple(p) for p in points))]  # type: ignore[arg-type]
    schema = AnswerSchema(schema)
    if any(tag in think for tag in _FORBIDDEN_IN_THINK):
        raise ValueError("format_reply: think text must not contain <think>/<answer> tags")
    if "```" in label:
        raise ValueError("format_reply: label must not contain a code fence (```)")
    if not objects and schema is not AnswerSchema.QWEN_GROUNDING:
        return f"<think>{think}</think>\n<answer>[]</answer>"  # "no object": the same form in both schemas
    if schema is AnswerSchema.SEG_ZERO:
        if len(objects) != 1 or len(objects[0].points) != 2:
            raise ValueError(
                "format_reply: the seg-zero schema holds exactly one object with two points, got "
                f"{len(objects)} object(s) with {[len(o.points) for o in objects]} point(s)"
            )
        obj = objects[0]
        answer = json.dumps(
            {
                "bbox": _coords(obj.box, 4, "bbox"),
                "points_1": _coords(obj.points[0], 2, "points_1"),
                "points_2": _coords(obj.points[1], 2, "points_2"),
            }
        )
        return f"<think>{think}</think>\n<answer>{answer}</answer>"
    if not objects:
        raise ValueError(f"format_reply: the {schema.value} schema needs at least one object")
    items = []
    for i, obj in enumerate(objects):
        item: dict[str, object] = {"bbox_2d": _coords(obj.box, 4, f"objects[{i}].box")}
        if schema is AnswerSchema.VISION_REASONER:
            if len(obj.points) != 1:
                raise ValueError(
                    f"format_reply: vision-reasoner objects have one point, objects[{i}] has {len(obj.points)}"
                )
        elif len(obj.points) > 1:
            raise ValueError(
                f"format_reply: qwen-grounding objects have at most one point, objects[{i}] has {len(obj.points)}"
            )
        if obj.points:
            item["point_2d"] = _coords(obj.points[0], 2, f"objects[{i}].points[0]")
        if schema is AnswerSchema.QWEN_GROUNDING:
            item["label"] = label
        items.append(item)
    answer = json.dumps(items)
    if schema is AnswerSchema.VISION_REASONER:
        return f"<think>{think}</think>\n<answer>{answer}</answer>"
    return f"```json\n{answer}\n```"


def format_refinement(
    positive_points: Sequence[Sequence[float]] = (),
    negative_points: Sequence[Sequence[float]] = (),
    *,
    box: Sequence[float] | None = None,
    stop: bool = False,
    think: str = "...",
) -> str:
    r"""Write a refinement reply (multi-turn episodes) that the parser reads back as the same clicks.

    >>> from segzero_env.parsing import parse_reply
    >>> reply = format_refinement([(5, 6)], [(7, 8)])
    >>> reply
    '<think>...</think>\n<answer>{"positive_points": [[5, 6]], "negative_points": [[7, 8]]}</answer>'
    >>> parse_reply(reply).refinement.negative_points
    ((7.0, 8.0),)
    >>> format_refinement(stop=True)
    '<think>...</think>\n<answer>{"stop": true}</answer>'
    >>> parse_reply(format_refinement(box=(1, 2, 30, 40))).refinement.box  # a restated box alone
    (1.0, 2.0, 30.0, 40.0)

    Args:
        positive_points: Foreground clicks ``(x, y)`` in the observation frame.
        negative_points: Background clicks.
        box: A restated box, or ``None`` to keep the current one.
        stop: End the episode (after applying any clicks).
        think: Text inside ``<think>...</think>``.

    Raises:
        ValueError: Nothing to say (no box, no click, no stop), or bad coordinates.
    """
    if any(tag in think for tag in _FORBIDDEN_IN_THINK):
        raise ValueError("format_refinement: think text must not contain <think>/<answer> tags")
    answer: dict[str, object] = {}
    if box is not None:
        answer["bbox"] = _coords(box, 4, "bbox")
    if positive_points:
        answer["positive_points"] = [_coords(p, 2, "positive_points") for p in positive_points]
    if negative_points:
        answer["negative_points"] = [_coords(p, 2, "negative_points") for p in negative_points]
    if stop:
        answer["stop"] = True
    if not answer:
        raise ValueError("format_refinement: give a box, a click or stop=True; an empty refinement is unusable")
    if list(answer) == ["bbox"]:
        answer["positive_points"] = []  # a lone bbox reads as a Seg-Zero answer missing its points
    return f"<think>{think}</think>\n<answer>{json.dumps(answer)}</answer>"

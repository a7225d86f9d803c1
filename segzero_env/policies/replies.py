"""Writing replies for the scripted policies: one adapter over :func:`segzero_env.answers.format_reply`."""

from __future__ import annotations

from collections.abc import Sequence

from segzero_env.types import Box, ObjectAnswer, Point


def write_reply(box: Box, points: Sequence[Point], schema: str = "seg-zero", think: str = "") -> str:
    """Write a well-formed reply holding one object with the package's reply writer.

    Args:
        box: ``(x1, y1, x2, y2)`` in the ``S x S`` frame.
        points: Points in the same frame.
        schema: Answer grammar: ``"seg-zero"`` (two points), ``"vision-reasoner"`` or ``"qwen-grounding"``
            (first point only).
        think: Text for the ``<think>`` block.
    """
    from segzero_env.answers import format_reply

    if schema != "seg-zero":
        # list grammars carry one point per object
        points = list(points)[:1]
    obj = ObjectAnswer(box=tuple(box), points=tuple(tuple(p) for p in points))  # type: ignore[arg-type]
    return format_reply([obj], schema=schema, think=think)


def write_objects(objects: Sequence[tuple[Sequence[float], Sequence[Sequence[float]]]], think: str = "") -> str:
    """Write a VisionReasoner list reply of several ``(box, [point])`` objects (``S x S`` frame)."""
    from segzero_env.answers import format_reply

    answers = [
        ObjectAnswer(box=tuple(float(v) for v in box), points=tuple(tuple(float(c) for c in p) for p in points[:1]))  # type: ignore[arg-type]
        for box, points in objects
    ]
    return format_reply(answers, schema="vision-reasoner", think=think)


def write_no_object(schema: str = "seg-zero", think: str = "") -> str:
    """Write the "no object" reply ``<answer>[]</answer>`` (the right answer to a query that names nothing)."""
    from segzero_env.answers import format_reply

    return format_reply([], schema=schema, think=think)


FRAMES = ("absolute", "relative-1000")
"""Coordinate frames a model may write: pixels of the ``S x S`` image it saw, or ``0..1000`` per side."""


def reply_in_env_frame(reply: str, frame: str, image_size: int) -> str:
    """Rewrite a reply written in ``frame`` into the env's ``S x S`` absolute frame.

    ``"absolute"`` replies pass through untouched; ``"relative-1000"`` replies (Qwen2-VL, Qwen3-VL)
    have their answer body rescaled, their reasoning kept. Unparseable replies pass through.

    Args:
        reply: The model's reply text.
        frame: ``"absolute"`` or ``"relative-1000"``.
        image_size: The env's ``S``.
    """
    if frame not in FRAMES:
        raise ValueError(f"unknown coordinate frame {frame!r}; use one of {', '.join(FRAMES)}")
    if frame == "absolute":
        return reply
    from segzero_env.hf.chat import COORDINATE_FRAMES, reply_to_env_frame

    # the converter is keyed by model family; any family writing this frame selects the same rescaling
    model_type = next(name for name, family_frame in COORDINATE_FRAMES.items() if family_frame == frame)
    return reply_to_env_frame(reply, model_type, image_size)

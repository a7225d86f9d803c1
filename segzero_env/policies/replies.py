"""Writing replies for the scripted policies: one adapter over :func:`segzero_env.answers.format_reply`."""

from __future__ import annotations

from collections.abc import Sequence

from segzero_env.types import Box, ObjectAnswer, Point


def write_reply(box: Box, points: Sequence[Point], schema: str = "seg-zero", think: str = "") -> str:
    """Write a well-formed reply holding one object with the package's reply writer.

    Args:
        box: ``(x1, y1, x2, y2)`` in the ``S x S`` frame.
        points: Points in the same frame.
        schema: Answer grammar (``"seg-zero"`` or ``"vision-reasoner"``).
        think: Text for the ``<think>`` block.
    """
    from segzero_env.answers import format_reply

    obj = ObjectAnswer(box=tuple(box), points=tuple(tuple(p) for p in points))  # type: ignore[arg-type]
    return format_reply([obj], schema=schema, think=think)

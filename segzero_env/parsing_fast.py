"""Fast readers shared by the parser and the reward rules.

:func:`decode` is :func:`json.loads` without raising. What the parser decodes it hands to the
``upstream`` reward rules in the :class:`~segzero_env.types.ParsedReply` (nothing is kept here), so
the rules do not decode the same answer text again.

:func:`canonical_numbers` reads the answer nearly every reply writes,
``{"bbox": [4 numbers], "points_1": [2], "points_2": [2]}``. Decoding that one shape with a single anchored
regular expression instead of :func:`json.loads` plus a walk of the decoded value is what lets reply
scoring keep up with a GRPO group's rewards. The reader accepts only text that :func:`json.loads` reads
to exactly that dict (keys in that order, JSON whitespace, JSON numbers with at most 7 digits before
the point and no exponent) and gives the number literals as written; :func:`floats` gives their
values. Anything else returns ``None`` and the caller takes the general path.

>>> literals = canonical_numbers('{"bbox": [1, 2, 30, 4.5], "points_1": [5, 6], "points_2": [-0, 100.0]}')
>>> literals, floats(literals)
(('1', '2', '30', '4.5', '5', '6', '-0', '100.0'), (1.0, 2.0, 30.0, 4.5, 5.0, 6.0, -0.0, 100.0))
>>> canonical_numbers("{'bbox': [1, 2, 3, 4], 'points_1': [5, 6], 'points_2': [7, 8]}") is None
True
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any


def seg_zero_pattern(possessive: bool) -> str:
    """The pattern of :data:`CANONICAL_SEG_ZERO`; ``possessive`` quantifiers (Python 3.11+) never backtrack.

    Both forms match the same texts: every quantified run (JSON whitespace, a sign, digits, a
    fraction) is followed by a character it cannot hold (a key's quote, ``:``, ``,``, a bracket, a
    brace, a digit after whitespace or a sign), so giving any of it back never lets the rest match.
    The possessive form fails ~3x faster on an answer that is not canonical and matches ~1.5x faster.
    """
    p = "+" if possessive else ""
    ws = r"[ \t\n\r]*" + p  # JSON whitespace only (\s would admit Unicode spaces json.loads refuses)
    # JSON numbers with at most 7 integer digits and no exponent ([0-9], not \d): every value is below
    # 10**7, so products of two coordinates stay exact in float arithmetic (readers rely on it).
    number = r"(-?" + p + r"(?:0|[1-9][0-9]{0,6}" + p + r")(?:\.[0-9]{1,20}" + p + r")?" + p + ")"

    def key(name: str, n: int) -> str:
        return '"' + name + '"' + ws + ":" + ws + r"\[" + ws + (ws + "," + ws).join([number] * n) + ws + r"\]"

    return r"\{" + ws + (ws + "," + ws).join([key("bbox", 4), key("points_1", 2), key("points_2", 2)]) + ws + r"\}"


_POSSESSIVE = sys.version_info >= (3, 11)

CANONICAL_SEG_ZERO = re.compile(seg_zero_pattern(_POSSESSIVE))
"""Fully matches a Seg-Zero answer in the canonical layout; its 8 groups are the numbers as written."""

CANONICAL_REPLY = re.compile(r"<think>[^<]*</think>\s*<answer>\s*(" + seg_zero_pattern(False) + r")\s*</answer>")
r"""Fully matches a whole (stripped) reply of the common shape: a reasoning without ``<``, then one
canonical Seg-Zero answer. Group 1 is the answer text; groups 2-9 its numbers. Such a reply has the
think-then-answer layout and one answer tag (``\s`` is the whitespace ``str.strip`` removes).
:func:`reply_head` and :func:`canonical_answer` read what it matches, faster."""

_REPLY_HEAD = re.compile(
    r"<think>[^<]*+</think>\s*+<answer>\s*+" if _POSSESSIVE else r"<think>[^<]*</think>\s*<answer>\s*"
)
r""":data:`CANONICAL_REPLY` up to its answer (its one way to match: ``[^<]*`` stops at the first ``<``, and
each ``\s*`` at the next ``<`` or at the answer)."""
_REPLY_TAIL = re.compile(r"\s*</answer>")
""":data:`CANONICAL_REPLY` after its answer."""


def reply_head(text: str) -> int:
    r"""Where the answer starts when ``text`` opens with ``<think>[^<]*</think>\s*<answer>\s*``, else -1.

    Such a (stripped) reply has the think-then-answer layout exactly when it ends with ``</answer>``.

    >>> reply_head("<think>a</think> <answer> [1]</answer>"), reply_head("<answer>[1]</answer>")
    (26, -1)
    """
    head = _REPLY_HEAD.match(text)
    return -1 if head is None else head.end()


NOT_CANONICAL = ("not canonical",)
""":func:`canonical_answer`'s result when the answer that starts where it looked is not canonical."""


def canonical_answer(text: str, start: int) -> tuple[str, tuple[str, ...]] | tuple[str] | None:
    """``(answer text, its 8 number literals)`` when ``text`` matches :data:`CANONICAL_REPLY`.

    ``start`` is :func:`reply_head`'s. Otherwise :data:`NOT_CANONICAL` when no canonical answer
    starts at ``start`` (so the answer text the parser cuts there, between the tags and stripped,
    is not canonical either: the caller need not run the expression on it again), else ``None``.
    """
    m = CANONICAL_SEG_ZERO.match(text, start)
    if m is None:
        return NOT_CANONICAL  # no match at ``start`` means no full match of any text starting there
    if _REPLY_TAIL.fullmatch(text, m.end()) is None:
        return None
    return m.group(), m.groups()


class _FloatTable(dict):
    """``float(literal)`` by lookup; a literal not in the table is converted, not added."""

    def __missing__(self, literal: str) -> float:
        return float(literal)


_INT_FLOATS: dict[str, float] = _FloatTable({str(i): float(i) for i in range(-256, 4096)})
"""``float(literal)`` for the integer literals of pixel coordinates (~0.4 MB): a lookup is ~4x faster."""
_float = _INT_FLOATS.__getitem__


def floats(literals: tuple[str, ...]) -> tuple[float, ...]:
    """``tuple(map(float, literals))`` for number literals, faster for the integer literals most coordinates are.

    >>> floats(("12", "-0", "3.5"))
    (12.0, -0.0, 3.5)
    """
    return tuple(map(_float, literals))


def canonical_numbers(text: str) -> tuple[str, ...] | None:
    """The 8 number literals of a canonical Seg-Zero answer (bbox, points_1, points_2), or ``None``."""
    if not text.startswith("{"):
        return None  # a list answer, say: the expression needs an opening brace
    m = CANONICAL_SEG_ZERO.fullmatch(text)
    return m.groups() if m is not None else None


_scan_once = json.JSONDecoder().scan_once
"""The scanner :func:`json.loads` runs (default decoder settings), called without its Python layers."""


_JSON_SPACE = frozenset(" \t\n\r")
"""The whitespace :func:`json.loads` skips around a value."""


def _json_loads(text: str) -> Any:
    """``json.loads(text)``, ~1 us faster when the text starts with its value (no leading whitespace).

    The scanner is the one :func:`json.loads` runs: its errors are raised as they are, and "Expecting
    value" is raised as :func:`json.loads` raises it. A text with whitespace before its value, or
    anything after it, is left to :func:`json.loads`, so values and errors are its own.
    """
    try:
        value, end = _scan_once(text, 0)
    except StopIteration as err:  # no value at the start
        if text[:1] in _JSON_SPACE:
            return json.loads(text)  # it skips the whitespace first
        raise json.JSONDecodeError("Expecting value", text, err.value) from None
    if end != len(text):
        return json.loads(text)
    return value


def decode(text: str) -> tuple[Any, type[Exception] | None, str]:
    """``json.loads(text)`` without raising: ``(value, None, "")``, or ``(None, error type, message)``.

    >>> decode("[1]"), decode("[1")[1:]
    (([1], None, ''), (<class 'ValueError'>, "Expecting ',' delimiter: line 1 column 3 (char 2)"))
    """
    try:
        return _json_loads(text), None, ""
    except ValueError as err:
        return None, ValueError, str(err)
    except RecursionError as err:
        return None, RecursionError, str(err)

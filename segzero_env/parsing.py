r"""The one reply parser: reply text in, :class:`~segzero_env.types.ParsedReply` out.

Everything that reads a policy's reply (rewards, the env, metrics, agents) goes through
:func:`parse_reply`; nobody else matches answer tags. It never raises, whatever it is given.

Grammar and documented behaviour:

* **Answer location.** The answer is the text between the FIRST ``<answer>`` and the first
  ``</answer>`` after it. Later answer tags are ignored (``n_answer_tags`` counts the openings). An
  ``<answer>`` without a closing tag is :attr:`~FailureReason.UNCLOSED_ANSWER_TAG`. A reply with no
  ``<answer>`` tag may still hold Qwen2.5-VL's native grounding output: a fenced block
  (```` ```json ... ``` ````) or the whole reply being a JSON list of ``{"bbox_2d": ...}`` objects; it is
  read as :attr:`AnswerSchema.QWEN_GROUNDING`. Otherwise the failure is ``NO_ANSWER_TAG``. A fenced
  block inside the answer tags is unwrapped too.
* **Schemas.** A dict with ``bbox`` is Seg-Zero's answer and needs ``bbox`` (4 numbers), ``points_1``
  and ``points_2`` (2 numbers each). A list of dicts with ``bbox_2d`` (4 numbers) and optional
  ``point_2d`` (2 numbers) is VisionReasoner's answer when every element has ``point_2d``, otherwise
  Qwen's grounding answer (``label`` and other extra keys are ignored). A lone dict with ``bbox_2d``
  is read as a one-element list.
* **No object.** An empty list, ``<answer>[]</answer>``, says that nothing in the image fits the
  query. It is a valid answer in either schema (Seg-Zero prompts use the same ``[]``): ``failure`` is
  ``None``, ``no_object`` is True, ``objects`` is empty (so ``ok`` is False and nothing is segmented;
  the prediction is the empty mask) and ``schema`` is ``vision-reasoner``, the list grammar.
* **JSON.** The body is read with :func:`json.loads` (``strict_json=True``). If that fails, it is read
  as a Python literal (single-quoted dicts, as in the Seg-Zero prompt's own example) with
  :func:`ast.literal_eval` and ``strict_json=False``; bodies over :data:`MAX_LITERAL_CHARS` skip this
  fallback. Tuples are accepted where lists are expected in that fallback.
* **Numbers.** ints and floats only. ``bool`` and numeric strings (``"10"``) are ``NOT_A_NUMBER``:
  a policy that quotes its numbers has not written the grammar. NaN, infinities and ints too large
  for a float are ``NON_FINITE``. A list of the wrong size is ``WRONG_LENGTH``; a missing key is
  ``MISSING_KEY``; the ``detail`` names the key (``bbox``, ``[2].point_2d``, ...).
* **Refinement (multi-turn episodes).** A dict answer holding any of ``positive_points``,
  ``negative_points`` (lists of ``[x, y]`` pairs, at most :data:`MAX_CLICKS` each) or ``stop``
  (a JSON boolean) is a refinement: ``{"positive_points": [[x, y]], "negative_points": [[x, y]]}``
  adds foreground / background clicks; ``bbox`` may restate the box or be omitted (the env keeps
  the current one); ``points_1`` / ``points_2`` count as positive clicks; ``{"stop": true}`` ends the
  episode (with clicks, they are applied first). With ``bbox``, ``points_1`` and ``points_2`` all
  present the schema stays ``seg-zero`` (the clicks are added to its object); otherwise it is
  ``refine``. ``ParsedReply.refinement`` holds the clicks, ``ParsedReply.stop`` the stop flag. A
  refinement with no box, no click and no ``"stop": true`` is ``MISSING_KEY``; ``objects`` is empty
  when the box is omitted.
* **Repairs.** An inverted box (``x2 < x1`` or ``y2 < y1``) is swapped and ``box_inverted`` set.
  Duplicated objects are kept as given. Coordinates stay in the reply's frame, unclipped (the env
  maps and clips them).
* **Size.** A reply longer than ``max_chars`` is ``TOO_LONG`` and is not scanned at all. A non-``str``
  reply (bytes included) is ``NOT_A_STRING``; an empty or all-whitespace one is ``EMPTY``.
* **Thinking format.** ``think_format`` is True when the whitespace-stripped reply fully matches
  ``<think>.*?</think>\s*<answer>.*?</answer>`` (dot matching newlines); it is computed in linear
  time, without the regular expression's quadratic worst case.

>>> r = parse_reply('<think>red one</think> <answer>{"bbox": [1, 2, 30, 40], "points_1": [5, 6], '
...                 '"points_2": [7, 8]}</answer>')
>>> r.ok, r.schema.value, r.think_format, r.objects[0].box, r.objects[0].points
(True, 'seg-zero', True, (1.0, 2.0, 30.0, 40.0), ((5.0, 6.0), (7.0, 8.0)))
>>> parse_reply("<answer>{'bbox': [1, 2, 3]}</answer>").detail
'bbox has 3 values, expected 4'
"""

from __future__ import annotations

import ast
import re
import warnings
from typing import Any

from segzero_env.parsing_fast import NOT_CANONICAL, canonical_answer, canonical_numbers, decode, floats, reply_head
from segzero_env.parsing_schemas import MAX_CLICKS as MAX_CLICKS  # re-exported: the grammar above cites it
from segzero_env.parsing_schemas import (
    REFINE_KEYS,
    ParseError,
    read_object_list,
    read_refinement,
    read_seg_zero,
    short_repr,
    upright_box,
)
from segzero_env.types import AnswerSchema, FailureReason, ObjectAnswer, ParsedReply

DEFAULT_MAX_CHARS = 200_000
"""Replies longer than this are rejected as ``TOO_LONG`` without being scanned."""

MAX_LITERAL_CHARS = 20_000
"""Answer bodies longer than this are not tried as Python literals (``ast`` is slow and deep on junk)."""

ANSWER_TEXT_CHARS = 2_000
"""How much of the answer body is kept in ``ParsedReply.answer_text``."""

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_ANSWER_OPEN = "<answer>"
_ANSWER_CLOSE = "</answer>"
_FENCE = "```"
_WS_THEN_ANSWER = re.compile(r"\s*<answer>")
_JSON_ONLY_WORD = re.compile(r"true|false|null|NaN|Infinity")
_FENCE_LANGUAGE = re.compile(r"[A-Za-z0-9_+-]*[ \t]*\r?\n?")


def think_format_ok(text: str) -> bool:
    r"""Whether ``text`` fully matches ``<think>.*?</think>\s*<answer>.*?</answer>`` (DOTALL).

    The caller strips surrounding whitespace first. The earliest ``</think>`` followed by
    optional whitespace and ``<answer>`` is the best split (it leaves the most room for the final
    ``</answer>``), so one forward scan decides the match.

    >>> think_format_ok("<think>a</think> <answer>b</answer>")
    True
    >>> think_format_ok("<think>a</think> x <answer>b</answer>")
    False
    """
    if not (text.startswith(_THINK_OPEN) and text.endswith(_ANSWER_CLOSE)):
        return False
    last_close = len(text) - len(_ANSWER_CLOSE)
    pos = len(_THINK_OPEN)
    while True:
        k = text.find(_THINK_CLOSE, pos)
        if k < 0:
            return False
        end = k + len(_THINK_CLOSE)
        if text.startswith(_ANSWER_OPEN, end):  # the common layouts first: no regex needed
            return end + len(_ANSWER_OPEN) <= last_close
        m = _WS_THEN_ANSWER.match(text, end)
        if m is not None:
            return m.end() <= last_close
        pos = k + 1


def _decode(body: str) -> tuple[Any, bool]:
    """Decode an answer body: strict JSON first, then a Python literal. Raises ``ParseError``."""
    value, error, json_error = decode(body)
    if error is None:
        return value, True
    if len(body) > MAX_LITERAL_CHARS:
        raise ParseError(FailureReason.INVALID_JSON, f"answer is not JSON ({json_error})")
    if "'" in body and '"' not in body and "\\" not in body and _JSON_ONLY_WORD.search(body) is None:
        # A single-quoted literal without escapes, double quotes or JSON-only words: swapping the quotes
        # gives JSON that decodes to exactly the literal's value, an order of magnitude faster than ast.
        swapped, error, _ = decode(body.replace("'", '"'))
        if error is None:
            return swapped, False
    if _bare_json_word(body):
        # A bare JSON word is a name to Python, and ast.literal_eval refuses every name: it would fail.
        raise ParseError(FailureReason.INVALID_JSON, f"answer is neither JSON nor a Python literal ({json_error})")
    try:
        # Junk such as "1jx" makes the compiler warn; a policy's text must not spam the warnings log.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(body)
    except Exception:  # noqa: BLE001 - ast raises many types on junk (Syntax, Value, Type, Memory, Recursion)
        raise ParseError(
            FailureReason.INVALID_JSON, f"answer is neither JSON nor a Python literal ({json_error})"
        ) from None
    return value, False


def _bare_json_word(body: str) -> bool:
    """Whether ``body`` has ``true``, ``false``, ``null``, ``NaN`` or ``Infinity`` outside any Python string.

    Decided only for bodies whose strings are plain single-quoted ones (no double quote, backslash,
    triple quote or comment sign); any other body gives False. Outside a string such a word is a
    name, and no Python literal holds a name, so :func:`ast.literal_eval` would refuse the body:
    finding that out by compiling it costs ~50 us.

    >>> _bare_json_word("{'bbox': [1, null]}"), _bare_json_word("{'note': 'null'}")
    (True, False)
    """
    if '"' in body or "\\" in body or "'''" in body or "#" in body or _JSON_ONLY_WORD.search(body) is None:
        return False
    outside = body.split("'")[0::2]  # without escapes, the odd pieces are the strings' contents
    return any(_JSON_ONLY_WORD.search(piece) is not None for piece in outside)


def _strip_fence(body: str) -> str:
    """Unwrap a Markdown code fence (```json ... ```) around an answer body."""
    if not body.startswith(_FENCE):
        return body
    end = body.find(_FENCE, 3)
    inner = body[3:end] if end >= 0 else body[3:]
    m = _FENCE_LANGUAGE.match(inner)
    return inner[m.end() :].strip() if m else inner.strip()


def _interpret(
    value: Any, strict: bool, think: bool, n_tags: int, answer_text: str | None, untagged: bool
) -> ParsedReply:
    """Turn a decoded answer into a ParsedReply (schema dispatch)."""
    try:
        if isinstance(value, dict) and not untagged and not REFINE_KEYS.isdisjoint(value):
            objects, inverted, schema, refinement, stop = read_refinement(value)
            return ParsedReply.fast(
                objects=objects,
                schema=schema,
                detail=_notes(strict, inverted, n_tags),
                box_inverted=inverted,
                refinement=refinement,
                stop=stop,
                **_reply_fields(think, strict, n_tags, answer_text),
            )
        if isinstance(value, dict):
            if "bbox" in value and not untagged:
                read = read_seg_zero(value)
                if type(read) is ParseError:
                    return ParsedReply.failed(read.reason, read.detail, think, strict, n_tags, answer_text)
                objects, inverted = read  # type: ignore[misc]
                notes = _notes(strict, inverted, n_tags)
                return ParsedReply.answered(
                    objects, AnswerSchema.SEG_ZERO, think, strict, n_tags, answer_text, inverted, notes
                )
            if "bbox_2d" in value:
                value = [value]
            else:
                keys = ", ".join(short_repr(k, 20) for k in list(value)[:6])
                raise ParseError(
                    FailureReason.MISSING_KEY,
                    f"answer has no 'bbox' key (keys: {keys}); expected bbox, points_1, points_2 or a bbox_2d list",
                )
        if isinstance(value, (list, tuple)) and not isinstance(value, str):
            if len(value) == 0:
                return ParsedReply(
                    schema=AnswerSchema.VISION_REASONER,
                    no_object=True,
                    detail=_notes(strict, False, n_tags),
                    **_reply_fields(think, strict, n_tags, answer_text),
                )
            objects, inverted, schema, checks, fail = read_object_list(value)
            if untagged:
                schema = AnswerSchema.QWEN_GROUNDING
            if fail is not None:
                return ParsedReply.failed(fail.reason, fail.detail, think, strict, n_tags, answer_text, checks)
            notes = _notes(strict, inverted, n_tags)
            return ParsedReply.answered(objects, schema, think, strict, n_tags, answer_text, inverted, notes, checks)
        raise ParseError(FailureReason.WRONG_TYPE, f"answer is {type(value).__name__}, expected an object or a list")
    except ParseError as fail:
        return ParsedReply.failed(fail.reason, fail.detail, think, strict, n_tags, answer_text)


def _reply_fields(think: bool, strict: bool, n_tags: int, answer_text: str | None) -> dict[str, Any]:
    """The reply-level fields of a ParsedReply, for the keyword constructors of the rarer answers."""
    return {"think_format": think, "strict_json": strict, "n_answer_tags": n_tags, "answer_text": answer_text}


def _notes(strict: bool, inverted: bool, n_tags: int) -> str:
    if strict and not inverted and n_tags <= 1:
        return ""
    notes = []
    if not strict:
        notes.append("read as a Python literal, not strict JSON")
    if inverted:
        notes.append("inverted box swapped")
    if n_tags > 1:
        notes.append(f"{n_tags} answer tags, the first was read")
    return "; ".join(notes)


def _parse_untagged(text: str, think: bool) -> ParsedReply:
    """Read a reply without answer tags: look for Qwen's native grounding output."""
    start = text.find(_FENCE)
    if start >= 0:
        end = text.find(_FENCE, start + 3)
        candidate = _strip_fence(text[start : end + 3]) if end >= 0 else None
    elif text[0] in "[{" and text[-1] in "]}":
        candidate = text
    else:
        candidate = None
    no_tag = "reply has no <answer> tag"
    if not candidate or candidate[0] not in "[{":
        return ParsedReply.failed(FailureReason.NO_ANSWER_TAG, no_tag, think_format=think)
    try:
        value, strict = _decode(candidate)
    except ParseError:
        failed = ParsedReply.failed(
            FailureReason.NO_ANSWER_TAG, no_tag + " (and no readable grounding JSON)", think_format=think
        )
        return _read(failed, candidate, None, False, False)
    grounding = (isinstance(value, dict) and "bbox_2d" in value) or (
        isinstance(value, list) and len(value) > 0 and isinstance(value[0], dict) and "bbox_2d" in value[0]
    )
    if not grounding:
        failed = ParsedReply.failed(
            FailureReason.NO_ANSWER_TAG, no_tag + " (and no bbox_2d grounding JSON)", think_format=think
        )
        return _read(failed, candidate, value, strict, False)
    parsed = _interpret(value, strict, think, 0, candidate[:ANSWER_TEXT_CHARS], untagged=True)
    return _read(parsed, candidate, value, strict, False)


def parse_reply(text: object, *, max_chars: int = DEFAULT_MAX_CHARS) -> ParsedReply:
    """Parse a policy reply into a typed answer or a typed failure. Never raises.

    Args:
        text: The reply. Anything that is not a ``str`` fails with ``NOT_A_STRING``.
        max_chars: Longer replies fail with ``TOO_LONG`` before any scanning.

    Returns:
        The parsed reply; see the module docstring for the grammar and edge cases.
    """
    if not isinstance(text, str):
        return ParsedReply.failed(FailureReason.NOT_A_STRING, f"reply is {type(text).__name__}, expected str")
    if len(text) > max_chars:
        return ParsedReply.failed(FailureReason.TOO_LONG, f"reply has {len(text)} characters, the limit is {max_chars}")
    stripped = text.strip()
    if not stripped:
        return ParsedReply.failed(FailureReason.EMPTY, "reply is empty")
    try:
        return _parse_stripped(stripped)
    except Exception as err:  # noqa: BLE001 - last line of defence: a policy's text must never crash the caller
        return ParsedReply.failed(FailureReason.INVALID_JSON, f"unreadable reply ({type(err).__name__})")


def _parse_stripped(text: str) -> ParsedReply:
    head = reply_head(text)
    head_not_canonical = False  # no canonical answer starts at the head's end
    if head >= 0:
        common = canonical_answer(text, head)  # most replies: regular expressions read them whole
        if common is NOT_CANONICAL:
            head_not_canonical = True
        elif common is not None:
            body, literals = common
            return _canonical_seg_zero(body, True, 1, body[:ANSWER_TEXT_CHARS], literals)
        think = text.endswith(_ANSWER_CLOSE)  # the head is the layout's start (reply_head)
    else:
        think = think_format_ok(text)
    open_at = text.find(_ANSWER_OPEN)
    if open_at < 0:
        return _parse_untagged(text, think)
    n_tags = text.count(_ANSWER_OPEN)
    start = open_at + len(_ANSWER_OPEN)
    end = text.find(_ANSWER_CLOSE, start)
    if end < 0:
        return ParsedReply.failed(
            FailureReason.UNCLOSED_ANSWER_TAG, "<answer> is never closed by </answer>", think, n_answer_tags=n_tags
        )
    body = text[start:end].strip()
    answer_text = body[:ANSWER_TEXT_CHARS]
    fenced = _strip_fence(body)
    if not fenced:
        return ParsedReply.failed(FailureReason.INVALID_JSON, "answer is empty", think, False, n_tags, answer_text)
    # The head's answer starts after the whitespace that follows <answer>, where the text cut here
    # starts: canonical_answer found no canonical answer there, so this text is not one.
    literals = None if fenced is body and head_not_canonical else canonical_numbers(fenced)
    if literals is not None:
        return _canonical_seg_zero(fenced, think, n_tags, answer_text, literals)
    try:
        value, strict = _decode(fenced)
    except ParseError as fail:
        failed = ParsedReply.failed(fail.reason, fail.detail, think, False, n_tags, answer_text)
        return _read(failed, fenced, None, False, True)
    parsed = _interpret(value, strict, think, n_tags, answer_text, untagged=False)
    return _read(parsed, fenced, value, strict, True)


def _read(parsed: ParsedReply, text: str, value: Any, strict: bool, not_canonical: bool) -> ParsedReply:
    """``parsed``, holding for the reward rules what was read of ``text``, the answer text decoded.

    ``text`` is without its code fence; ``value`` is what it was read to, its :func:`json.loads` value
    when ``strict`` (it decoded; the value is shared, its readers never modify it), and is not kept
    otherwise (a Python literal's); ``not_canonical``: the text was found not to be a canonical
    Seg-Zero answer.
    """
    fields = vars(parsed)  # a frozen dataclass; ParsedReply._json and ._canonical are not fields
    fields["_json"] = (text, value if strict else None, strict)
    if not_canonical:
        fields["_canonical"] = (text, None)
    return parsed


def _canonical_seg_zero(
    body: str, think: bool, n_tags: int, answer_text: str, literals: tuple[str, ...]
) -> ParsedReply:
    """The general path's result for a canonical Seg-Zero answer (``literals``: its numbers), without json.loads."""
    # float(literal) == float(json value); the literals have no exponent, so they are finite.
    values = floats(literals)
    box, inverted = upright_box(values[:4])
    a, b, c, d = values[4:]
    detail = "" if n_tags <= 1 and not inverted else _notes(True, inverted, n_tags)
    obj = ObjectAnswer.fast(box, ((a, b), (c, d)))
    parsed = ParsedReply.answered((obj,), AnswerSchema.SEG_ZERO, think, True, n_tags, answer_text, inverted, detail)
    vars(parsed)["_canonical"] = (body, literals)  # for the reward rules (not a field)
    return parsed

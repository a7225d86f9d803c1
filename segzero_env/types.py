"""Typed values shared by every part of the package.

Coordinates follow one convention everywhere: a box is ``(x1, y1, x2, y2)`` in pixels with
``x1 <= x2`` and ``y1 <= y2``; a point is ``(x, y)``. Which frame a value lives in (the
``S x S`` observation frame or the original image) is stated by the field that holds it.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class Sample:
    """One reasoning-segmentation example, in the original image frame.

    Attributes:
        sample_id: Stable identifier from the source (file stem, ``ref_id`` and sentence id, ...).
        image: ``H x W x 3`` uint8 RGB image.
        query: The referring expression or reasoning question.
        mask: ``H x W`` uint8 ground truth: 0 background, 1 target, 255 ignore; ``None`` when the
            source has no mask.
        query_kind: ``"short"`` or ``"long"`` for ReasonSeg, else ``None``.
        gt_box: Ground-truth box in the original frame, when the source gives one.
        gt_points: Ground-truth points in the original frame, when the source gives them.
        meta: Source-specific extras (level, object list, ...). Never needed by the env.
    """

    sample_id: str
    image: np.ndarray
    query: str
    mask: np.ndarray | None
    query_kind: str | None = None
    gt_box: Box | None = None
    gt_points: tuple[Point, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.image.shape[1])


class AnswerSchema(str, enum.Enum):
    """Which answer grammar a reply was written in."""

    SEG_ZERO = "seg-zero"
    """``{"bbox": [x1,y1,x2,y2], "points_1": [x,y], "points_2": [x,y]}``."""
    VISION_REASONER = "vision-reasoner"
    """``[{"bbox_2d": [x1,y1,x2,y2], "point_2d": [x,y]}, ...]``."""
    QWEN_GROUNDING = "qwen-grounding"
    """Qwen2.5-VL native grounding: ``[{"bbox_2d": [...], "label": "..."}]`` (points optional)."""
    REFINE = "refine"
    """Refinement turn: ``{"positive_points": [[x, y]], "negative_points": [[x, y]], "bbox": [...], "stop": true}``,
    every key optional (see :mod:`segzero_env.parsing`)."""


class FailureReason(str, enum.Enum):
    """Why a reply could not be turned into an answer. The value is the stable name put in ``info``."""

    NOT_A_STRING = "not_a_string"
    EMPTY = "empty"
    NO_ANSWER_TAG = "no_answer_tag"
    UNCLOSED_ANSWER_TAG = "unclosed_answer_tag"
    INVALID_JSON = "invalid_json"
    WRONG_TYPE = "wrong_type"
    MISSING_KEY = "missing_key"
    WRONG_LENGTH = "wrong_length"
    NOT_A_NUMBER = "not_a_number"
    NON_FINITE = "non_finite"
    NO_OBJECTS = "no_objects"
    TOO_LONG = "too_long"


@dataclass(frozen=True)
class ObjectAnswer:
    """One predicted object, in the frame the reply was written in (the ``S x S`` observation).

    ``box`` is normalised so that ``x1 <= x2`` and ``y1 <= y2`` (an inverted box is swapped, and
    ``ParsedReply.box_inverted`` records it). ``points`` (positive clicks) may be empty;
    ``negative_points`` are background clicks, given only by refinement answers.
    """

    box: Box
    points: tuple[Point, ...] = ()
    negative_points: tuple[Point, ...] = ()

    @classmethod
    def fast(cls, box: Box, points: tuple[Point, ...] = ()) -> ObjectAnswer:
        """``ObjectAnswer(box, points)`` without the frozen dataclass's per-field checks (hot paths)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", {"box": box, "points": points, "negative_points": ()})
        return obj


@dataclass(frozen=True)
class Refinement:
    """The refinement keys of a reply, in the reply's frame.

    Attributes:
        box: The restated box, or ``None`` when the reply keeps the current one.
        positive_points: Foreground clicks added by the reply (``points_1`` / ``points_2`` included).
        negative_points: Background clicks added by the reply.
    """

    box: Box | None = None
    positive_points: tuple[Point, ...] = ()
    negative_points: tuple[Point, ...] = ()


@dataclass(frozen=True)
class ParsedReply:
    r"""What the one parser makes of a reply: a typed answer or a typed failure.

    Attributes:
        objects: Predicted objects, empty on failure.
        schema: The grammar the answer matched, ``None`` on failure.
        failure: Why no answer could be read, ``None`` on success.
        detail: Human-readable explanation of the failure (or of notable repairs).
        think_format: Whole reply matches ``<think>.*?</think>\s*<answer>.*?</answer>``.
        strict_json: The answer body was strict JSON (not a Python-literal dict).
        box_inverted: At least one box had ``x2 < x1`` or ``y2 < y1`` and was swapped.
        answer_text: The text between the answer tags, if any (truncated to 2,000 chars).
        n_answer_tags: How many ``<answer>`` opening tags the reply holds (only the first complete
            ``<answer>...</answer>`` pair is read).
        item_checks: For list answers (VisionReasoner / Qwen grounding), one ``(bbox_2d valid,
            point_2d valid)`` pair per list element, filled even when the reply as a whole fails;
            empty for other answers. The VisionReasoner format reward is built from it.
        refinement: The refinement keys (``positive_points``, ``negative_points``, ``stop``) when the
            answer holds any, else ``None``. A refinement that omits the box has no ``objects``:
            the multi-turn env supplies the current box.
        stop: The answer holds ``"stop": true``: end a multi-turn episode after this reply.
        no_object: The answer says "no object": the empty list ``[]`` (a valid answer, not a failure;
            ``objects`` is empty and ``ok`` is False, so nothing is segmented). It is the right
            answer to a query that names nothing in the image (gRefCOCO's no-target expressions).
    """

    objects: tuple[ObjectAnswer, ...] = ()
    schema: AnswerSchema | None = None
    failure: FailureReason | None = None
    detail: str = ""
    think_format: bool = False
    strict_json: bool = False
    box_inverted: bool = False
    answer_text: str | None = None
    n_answer_tags: int = 0
    item_checks: tuple[tuple[bool, bool], ...] = ()
    refinement: Refinement | None = None
    stop: bool = False
    no_object: bool = False

    # What the parser read, handed to the reward rules so that they need not read the same text again
    # (instance values set by the parser; not fields: equality, repr and ``dataclasses.replace``
    # ignore them, and a reply built any other way has the class's ``None``).
    _json: ClassVar[tuple[str, Any, bool] | None] = None
    """``(text, json.loads(text) or None, whether it decoded)`` for the text the parser decoded."""
    _canonical: ClassVar[tuple[str, tuple[str, ...] | None] | None] = None
    """``(text, canonical_numbers(text))`` for the answer text the parser checked."""

    def __getstate__(self) -> dict[str, Any]:
        """The fields alone: a pickled or copied reply leaves the parser's reading behind (it can be long)."""
        state = dict(self.__dict__)
        state.pop("_json", None)
        state.pop("_canonical", None)
        return state

    @property
    def ok(self) -> bool:
        """True when at least one object was read."""
        return self.failure is None and len(self.objects) > 0

    @classmethod
    def fast(cls, **fields: Any) -> ParsedReply:
        """``ParsedReply(**fields)``, built without the frozen dataclass's per-field ``__setattr__``.

        The result compares equal to the regular constructor's. The parser's hot paths use the
        positional :meth:`answered` and :meth:`failed`, which skip the keyword merge too.
        """
        values = {**_PARSED_REPLY_DEFAULTS, **fields}
        if len(values) != len(_PARSED_REPLY_DEFAULTS):  # an unknown name adds a key
            raise TypeError(f"ParsedReply has no field {sorted(set(fields) - _PARSED_REPLY_FIELDS)}")
        return _parsed_reply(cls, values)

    @classmethod
    def answered(
        cls,
        objects: tuple[ObjectAnswer, ...],
        schema: AnswerSchema,
        think_format: bool,
        strict_json: bool,
        n_answer_tags: int,
        answer_text: str | None,
        box_inverted: bool,
        detail: str,
        item_checks: tuple[tuple[bool, bool], ...] = (),
    ) -> ParsedReply:
        """A read answer: ``ParsedReply.fast`` with these fields (the others at their defaults), faster.

        Every field is written out (no merge with the defaults: this runs once per reply).
        """
        return _parsed_reply(
            cls,
            {
                "objects": objects,
                "schema": schema,
                "failure": None,
                "detail": detail,
                "think_format": think_format,
                "strict_json": strict_json,
                "box_inverted": box_inverted,
                "answer_text": answer_text,
                "n_answer_tags": n_answer_tags,
                "item_checks": item_checks,
                "refinement": None,
                "stop": False,
                "no_object": False,
            },
        )

    @classmethod
    def failed(
        cls,
        failure: FailureReason,
        detail: str,
        think_format: bool = False,
        strict_json: bool = False,
        n_answer_tags: int = 0,
        answer_text: str | None = None,
        item_checks: tuple[tuple[bool, bool], ...] = (),
    ) -> ParsedReply:
        """A failure: ``ParsedReply.fast`` with these fields (the others at their defaults), faster.

        Every field is written out, as in :meth:`answered`.
        """
        return _parsed_reply(
            cls,
            {
                "objects": (),
                "schema": None,
                "failure": failure,
                "detail": detail,
                "think_format": think_format,
                "strict_json": strict_json,
                "box_inverted": False,
                "answer_text": answer_text,
                "n_answer_tags": n_answer_tags,
                "item_checks": item_checks,
                "refinement": None,
                "stop": False,
                "no_object": False,
            },
        )


def _parsed_reply(cls: type[ParsedReply], values: dict[str, Any]) -> ParsedReply:
    """A ``cls`` instance holding ``values`` (every field), without the frozen dataclass's ``__setattr__``."""
    new = object.__new__(cls)
    object.__setattr__(new, "__dict__", values)
    return new


_PARSED_REPLY_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ParsedReply)}
_PARSED_REPLY_FIELDS = frozenset(_PARSED_REPLY_DEFAULTS)


@dataclass(frozen=True)
class Prompt:
    """A segmenter prompt in the ORIGINAL image frame.

    Attributes:
        box: ``(x1, y1, x2, y2)`` or ``None``.
        points: ``N x 2`` float array of ``(x, y)`` clicks (may be empty).
        point_labels: ``N`` int array, 1 positive / 0 negative.
        mask_input: Optional previous low-resolution mask logits (``256 x 256`` for SAM2) used by
            refinement turns; backends that cannot use it ignore it.
    """

    box: Box | None
    points: np.ndarray
    point_labels: np.ndarray
    mask_input: np.ndarray | None = None

"""Prompt templates: the text the policy reads with the image.

Three kinds: the Seg-Zero template (verbatim, since a checkpoint trained with it expects exactly
it), the VisionReasoner multi-object template, and any user text holding a ``{query}`` slot.
Each template names the answer schema it asks for; the answer-format reward checks replies
against it.

>>> print(format_prompt("seg-zero", "The red CUP."))  # doctest: +NORMALIZE_WHITESPACE
Please find 'the red cup' with bbox and points.Compare the difference between objects and find the most
closely matched one.Output the thinking process in <think> </think> and final answer in <answer> </answer>
tags.Output the one bbox and points of two largest inscribed circles inside the interested object in JSON
format.i.e., <think> thinking process here </think><answer>{'bbox': [10,100,200,210], 'points_1': [30,110],
'points_2': [35,180]}</answer>
>>> format_prompt("Segment {query}, please.", "The red CUP.")
'Segment The red CUP., please.'
"""

from __future__ import annotations

from dataclasses import dataclass

from segzero_env.types import AnswerSchema

SYSTEM_PROMPT = "You are a helpful assistant."
"""System turn used with every template (Qwen2.5-VL's default)."""

QUERY_SLOT = "{query}"

# Sentences are joined with no space, exactly as the Seg-Zero checkpoints were trained.
SEG_ZERO_TEXT = "".join(
    [
        "Please find '{query}' with bbox and points.",
        "Compare the difference between objects and find the most closely matched one.",
        "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
        "Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format.",
        "i.e., <think> thinking process here </think>",
        "<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>",
    ]
)

VISION_REASONER_TEXT = "".join(
    [
        "Please find '{query}' with bboxs and points.",
        "Compare the difference between object(s) and find the most closely matched object(s).",
        "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
        "Output the bbox(es) and point(s) inside the interested object(s) in JSON format.",
        "i.e., <think> thinking process here </think>",
        '<answer>[{"bbox_2d": [10,100,200,210], "point_2d": [30,110]}, '
        '{"bbox_2d": [225,296,706,786], "point_2d": [302,410]}]</answer>',
    ]
)


@dataclass(frozen=True)
class PromptTemplate:
    """A user-turn template with a ``{query}`` slot.

    Attributes:
        name: ``"seg-zero"``, ``"vision-reasoner"`` or ``"custom"``.
        text: The template; ``{query}`` is replaced by plain substitution (other braces are kept).
        schema: The answer schema the template asks for.
        normalize_query: Lower-case the query and strip trailing periods before filling the slot
            (what the Seg-Zero templates were trained with); custom templates insert it as given.
    """

    name: str
    text: str
    schema: AnswerSchema = AnswerSchema.SEG_ZERO
    normalize_query: bool = False

    def __post_init__(self) -> None:
        if QUERY_SLOT not in self.text:
            raise ValueError(
                f"prompt template {self.name!r} has no {QUERY_SLOT} slot; add {QUERY_SLOT} where the query goes "
                f"(or use one of {sorted(TEMPLATES)})"
            )

    def format(self, query: str) -> str:
        """Fill the template with a query."""
        if self.normalize_query:
            query = query.strip().lower().rstrip(".")
        return self.text.replace(QUERY_SLOT, query)


SEG_ZERO = PromptTemplate("seg-zero", SEG_ZERO_TEXT, AnswerSchema.SEG_ZERO, normalize_query=True)
VISION_REASONER = PromptTemplate(
    "vision-reasoner", VISION_REASONER_TEXT, AnswerSchema.VISION_REASONER, normalize_query=True
)

TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in (SEG_ZERO, VISION_REASONER)}
"""The built-in templates by name."""


def get_template(
    name_or_text: str | PromptTemplate, *, schema: AnswerSchema | str = AnswerSchema.SEG_ZERO
) -> PromptTemplate:
    """Look up a template by name, or wrap custom text holding ``{query}``.

    Args:
        name_or_text: A built-in name (``"seg-zero"``, ``"vision-reasoner"``), custom template text
            with a ``{query}`` slot, or a :class:`PromptTemplate` (returned as is).
        schema: The answer schema a custom template asks for.

    Returns:
        The template.

    Raises:
        ValueError: If the text is neither a known name nor holds ``{query}``.

    >>> get_template("vision-reasoner").schema.value
    'vision-reasoner'
    >>> get_template("segment it")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown prompt template 'segment it': use one of ['seg-zero', 'vision-reasoner'] or text ...
    """
    if isinstance(name_or_text, PromptTemplate):
        return name_or_text
    if name_or_text in TEMPLATES:
        return TEMPLATES[name_or_text]
    if QUERY_SLOT not in name_or_text:
        shown = name_or_text if len(name_or_text) <= 60 else name_or_text[:57] + "..."
        raise ValueError(
            f"unknown prompt template {shown!r}: use one of {sorted(TEMPLATES)} or text with a {QUERY_SLOT} slot"
        )
    return PromptTemplate("custom", name_or_text, AnswerSchema(schema))


def format_prompt(template: str | PromptTemplate, query: str) -> str:
    """Fill a template (name, custom text or :class:`PromptTemplate`) with a query."""
    return get_template(template).format(query)

import pytest

from segzero_env.prompts import (
    SEG_ZERO,
    SYSTEM_PROMPT,
    TEMPLATES,
    VISION_REASONER,
    PromptTemplate,
    format_prompt,
    get_template,
)
from segzero_env.types import AnswerSchema

EXPECTED_SEG_ZERO = (
    "Please find 'the cup on the left' with bbox and points."
    "Compare the difference between objects and find the most closely matched one."
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format."
    "i.e., <think> thinking process here </think>"
    "<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>"
)


def test_seg_zero_template_is_verbatim():
    assert format_prompt("seg-zero", "The Cup on the LEFT.") == EXPECTED_SEG_ZERO
    assert format_prompt(SEG_ZERO, "the cup on the left") == EXPECTED_SEG_ZERO
    assert SEG_ZERO.schema is AnswerSchema.SEG_ZERO
    assert SYSTEM_PROMPT == "You are a helpful assistant."


def test_vision_reasoner_template():
    text = format_prompt("vision-reasoner", "All Red Cups.")
    assert text.startswith("Please find 'all red cups' with bboxs and points.")
    assert "the most closely matched object(s)" in text
    assert '"bbox_2d": [10,100,200,210], "point_2d": [30,110]' in text
    assert VISION_REASONER.schema is AnswerSchema.VISION_REASONER


def test_template_examples_parse_with_the_expected_schema():
    from segzero_env.parsing import parse_reply

    for template in TEMPLATES.values():
        example = template.text[template.text.rindex("<answer>") :]
        parsed = parse_reply("<think>t</think>" + example)
        assert parsed.ok and parsed.schema is template.schema, template.name


def test_custom_templates():
    t = get_template("Segment {query}. Answer as {'bbox': [...]}.", schema="vision-reasoner")
    assert t.name == "custom" and t.schema is AnswerSchema.VISION_REASONER
    # Query inserted as given; other braces untouched; every slot filled.
    assert t.format("The Cup.") == "Segment The Cup.. Answer as {'bbox': [...]}."
    assert format_prompt("{query} / {query}", "x") == "x / x"
    assert get_template(t) is t


def test_missing_slot_and_unknown_names():
    with pytest.raises(ValueError, match=r"unknown prompt template 'segzero'.*\{query\}"):
        get_template("segzero")
    with pytest.raises(ValueError, match="no {query} slot"):
        PromptTemplate("mine", "no slot here")
    with pytest.raises(ValueError):
        get_template("{query}", schema="json")

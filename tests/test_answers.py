import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segzero_env.answers import format_refinement, format_reply
from segzero_env.parsing import parse_reply
from segzero_env.types import AnswerSchema, ObjectAnswer

coord = st.one_of(
    st.integers(min_value=-10_000, max_value=10_000),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
)
point = st.tuples(coord, coord)


@st.composite
def boxes(draw):
    x1, x2 = sorted((draw(coord), draw(coord)))
    y1, y2 = sorted((draw(coord), draw(coord)))
    return (x1, y1, x2, y2)


think_text = st.text(max_size=60).filter(lambda t: "<" not in t)


@settings(max_examples=300, deadline=None)
@given(box=boxes(), points=st.tuples(point, point), think=think_text)
def test_seg_zero_round_trip(box, points, think):
    parsed = parse_reply(format_reply(box=box, points=points, think=think))
    assert parsed.ok and parsed.schema is AnswerSchema.SEG_ZERO and parsed.strict_json and parsed.think_format
    assert parsed.objects == (ObjectAnswer(box=box, points=points),)


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(st.builds(ObjectAnswer, box=boxes(), points=st.tuples(point)), min_size=1, max_size=5))
def test_vision_reasoner_round_trip(objects):
    parsed = parse_reply(format_reply(objects, schema="vision-reasoner"))
    assert parsed.ok and parsed.schema is AnswerSchema.VISION_REASONER and parsed.think_format
    assert parsed.objects == tuple(objects)
    assert parsed.item_checks == ((True, True),) * len(objects)


@settings(max_examples=200, deadline=None)
@given(
    objects=st.lists(
        st.builds(ObjectAnswer, box=boxes(), points=st.one_of(st.just(()), st.tuples(point))), min_size=1, max_size=4
    ),
    label=st.text(max_size=20).filter(lambda t: "`" not in t),
)
def test_qwen_grounding_round_trip(objects, label):
    parsed = parse_reply(format_reply(objects, schema=AnswerSchema.QWEN_GROUNDING, label=label))
    assert parsed.ok and parsed.schema is AnswerSchema.QWEN_GROUNDING and not parsed.think_format
    assert parsed.objects == tuple(objects)


def test_numpy_numbers_accepted():
    import numpy as np

    reply = format_reply(
        box=np.array([1, 2, 3, 4], dtype=np.int64), points=np.array([[1.5, 2.0], [3.0, 4.0]], dtype=np.float32)
    )
    assert parse_reply(reply).objects == (ObjectAnswer((1, 2, 3, 4), ((1.5, 2.0), (3.0, 4.0))),)
    with pytest.raises(ValueError, match="finite"):
        format_reply(box=(0, 0, 1, np.bool_(True)), points=[(0, 0), (1, 1)])


def test_integral_floats_written_as_ints():
    reply = format_reply(box=(1.0, 2.0, 3.5, 4.0), points=[(1, 2), (3.0, 4.0)])
    assert '"bbox": [1, 2, 3.5, 4]' in reply and '"points_2": [3, 4]' in reply


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({}, "either objects or box"),
        ({"box": (0, 0, 1, 1), "objects": [ObjectAnswer((0, 0, 1, 1))]}, "either objects or box"),
        ({"box": (0, 0, 1, 1), "points": [(0, 0)]}, "two points"),
        ({"box": (0, 0, 1), "points": [(0, 0), (1, 1)]}, "bbox needs 4"),
        ({"box": (0, 0, 1, float("nan")), "points": [(0, 0), (1, 1)]}, "finite"),
        ({"box": (0, 0, 1, True), "points": [(0, 0), (1, 1)]}, "finite"),
        ({"box": (0, 0, 1, 1), "points": [(0, 0), (1, 1)], "think": "a</think>"}, "tags"),
        ({"box": (0, 0, 1, 1), "points": [(0, 0), (1, 1)], "schema": "vision-reasoner"}, "one point"),
        ({"objects": [], "schema": "qwen-grounding"}, "at least one"),
        ({"box": (0, 0, 1, 1), "schema": "qwen-grounding", "label": "```"}, "fence"),
    ],
)
def test_bad_arguments_raise(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        format_reply(**kwargs)


def test_unknown_schema_raises():
    with pytest.raises(ValueError):
        format_reply(box=(0, 0, 1, 1), points=[(0, 0), (1, 1)], schema="yolo")


@pytest.mark.parametrize("schema", ["seg-zero", "vision-reasoner"])
def test_no_objects_write_the_no_object_answer(schema):
    reply = format_reply([], schema=schema, think="Nothing fits.")
    assert reply.endswith("<answer>[]</answer>")
    assert parse_reply(reply).no_object


def test_a_refinement_with_only_a_box_parses_as_a_refinement():
    parsed = parse_reply(format_refinement(box=(1, 2, 30.5, 40)))
    assert parsed.failure is None and parsed.schema.value == "refine"
    assert parsed.refinement.box == (1.0, 2.0, 30.5, 40.0)
    assert parsed.refinement.positive_points == () and not parsed.stop

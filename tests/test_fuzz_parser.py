"""Nothing a policy writes may crash the parser, the rewards or the env, or push a reward out of range."""

import json
import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segzero_env  # noqa: F401  (registers the env ids)
from segzero_env.answers import format_reply
from segzero_env.parsing import parse_reply
from segzero_env.rewards import PRESETS, TERM_NAMES, TERM_RANGES, RewardInput, compute_terms, make_preset
from segzero_env.types import AnswerSchema, FailureReason, ParsedReply

FRAGMENTS = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "<think",
    "answer>",
    "```json\n",
    "```",
    "\n",
    " ",
    "\t",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ",",
    ":",
    "'",
    '"',
    '"bbox"',
    "'bbox'",
    '"points_1"',
    '"points_2"',
    "'points_1'",
    '"bbox_2d"',
    '"point_2d"',
    '"label"',
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e308",
    "9" * 400,
    "true",
    "null",
    "None",
    '"12"',
    "0.5",
    "-3",
    "1_000",
    "0x1F",
    "1j",
    "猫",
    "\x00",
    "\u202e",
    "\ud800",
    "😀",
    "[[1, 2], [3, 4]]",
    "[1, 2, 3, 4]",
    "[1, 2]",
    "[]",
    "{}",
    "The cup. The cup.",
    "__import__('os')",
    '"positive_points"',
    '"negative_points"',
    '"stop"',
    "1jx",
]

fragment_soup = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.integers(-(10**30), 10**30).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.text(max_size=6),
    ),
    max_size=40,
).map("".join)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
json_keys = st.one_of(
    st.sampled_from(
        ["bbox", "points_1", "points_2", "bbox_2d", "point_2d", "label", "stop", "positive_points", "negative_points"]
    ),
    st.text(max_size=4),
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(json_keys, inner, max_size=4)),
    max_leaves=25,
)


@st.composite
def near_miss_replies(draw):
    """A well-formed reply, then damaged: a slice cut, a fragment inserted, a number swapped."""
    coord = st.integers(-100, 1000) | st.floats(-1e3, 1e3, allow_nan=False)
    box = draw(st.tuples(coord, coord, coord, coord))
    points = draw(st.tuples(st.tuples(coord, coord), st.tuples(coord, coord)))
    schema = draw(st.sampled_from(list(AnswerSchema)))
    if schema is AnswerSchema.SEG_ZERO:
        reply = format_reply(box=box, points=points, think=draw(st.text(max_size=30).filter(lambda t: "<" not in t)))
    else:
        reply = format_reply(box=box, points=points[:1], schema=schema)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(reply)))
        j = draw(st.integers(i, min(len(reply), i + 12)))
        reply = reply[:i] + draw(st.sampled_from(["", *FRAGMENTS])) + reply[j:]
    return reply


@st.composite
def structured_answers(draw):
    value = draw(json_values)
    body = json.dumps(value) if draw(st.booleans()) else repr(value)
    think = draw(st.sampled_from(["<think>x</think>", "", "<think>a. a.</think>\n"]))
    close = draw(st.sampled_from(["</answer>", "", "</answer></answer>"]))
    return f"{think}<answer>{body}{close}"


coords_like = st.lists(st.one_of(st.integers(-(10**400), 10**400), json_leaf), min_size=0, max_size=5)


@st.composite
def schema_shaped(draw):
    """Answers with the right keys but arbitrary values: exercises every number and length check."""
    kind = draw(st.integers(0, 2))
    if kind == 0:
        value = {k: draw(coords_like) for k in ("bbox", "points_1", "points_2") if draw(st.integers(0, 5))}
    elif kind == 1:
        clicks = st.lists(st.lists(st.integers(-50, 900) | json_leaf, min_size=1, max_size=3), max_size=3)
        parts = {
            "bbox": coords_like,
            "points_1": coords_like,
            "positive_points": clicks,
            "negative_points": clicks,
            "stop": st.booleans() | json_leaf,
        }
        value = {k: draw(v) for k, v in parts.items() if draw(st.integers(0, 2))}
    else:
        value = [
            {k: draw(coords_like) for k in ("bbox_2d", "point_2d") if draw(st.integers(0, 5))}
            for _ in range(draw(st.integers(0, 3)))
        ]
    body = json.dumps(value) if draw(st.booleans()) else repr(value)
    return f"<think>t</think><answer>{body}</answer>"


any_reply = st.one_of(st.text(), fragment_soup, near_miss_replies(), structured_answers(), schema_shaped())

GT = np.zeros((12, 16), np.uint8)
GT[2:8, 3:11] = 1
GT[0, :] = 255
PRED = np.zeros((12, 16), bool)
PRED[3:9, 4:12] = True
WEIRD_PRESET = make_preset("seg-zero", {"think_format": -1.5, "mask_iou": 2.0, "vr_accuracy": 0.25})


def _check_reply(reply: object, parsed: ParsedReply, *, pred, gt, gt_box, gt_points) -> None:
    assert isinstance(parsed, ParsedReply)
    assert parsed.ok == (parsed.failure is None and bool(parsed.objects))
    if parsed.failure is not None:
        assert parsed.objects == () and parsed.schema is None and isinstance(parsed.detail, str)
    elif parsed.no_object:  # the "no object" answer: an empty list
        assert parsed.objects == () and parsed.schema is AnswerSchema.VISION_REASONER
    elif not parsed.objects:  # only a refinement turn may keep the current box
        assert parsed.refinement is not None and parsed.schema is AnswerSchema.REFINE
    for obj in parsed.objects:
        assert obj.box[0] <= obj.box[2] and obj.box[1] <= obj.box[3]
        assert all(math.isfinite(v) for v in obj.box)
        assert all(math.isfinite(v) for p in obj.points for v in p)
    for schema in AnswerSchema:
        inp = RewardInput(reply, parsed, gt_box, gt_points, pred, gt, 840, expected_schema=schema)  # type: ignore[arg-type]
        terms = compute_terms(inp)
        assert tuple(terms) == TERM_NAMES
        for name, value in terms.items():
            lo, hi = TERM_RANGES[name]
            assert isinstance(value, float) and math.isfinite(value) and lo <= value <= hi, (name, value)
        for preset in (*PRESETS.values(), WEIRD_PRESET):
            lo, hi = preset.reward_range
            total = preset.combine(terms)
            assert math.isfinite(total) and lo - 1e-9 <= total <= hi + 1e-9


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=any_reply, masks=st.sampled_from(["both", "no-pred", "no-gt"]), gt_kind=st.sampled_from(["box", "none"]))
def test_parser_and_rewards_never_fail(reply, masks, gt_kind):
    parsed = parse_reply(reply)
    pred = None if masks == "no-pred" else PRED
    gt = None if masks == "no-gt" else GT
    gt_box, gt_points = ((3, 2, 10, 7), ((6, 4), (8, 5))) if gt_kind == "box" else (None, None)
    _check_reply(reply, parsed, pred=pred, gt=gt, gt_box=gt_box, gt_points=gt_points)


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.none(), st.integers(), st.binary(max_size=20), st.lists(st.text(max_size=3), max_size=3)))
def test_non_strings_are_typed_failures(value):
    parsed = parse_reply(value)
    assert parsed.failure is FailureReason.NOT_A_STRING
    _check_reply(value, parsed, pred=None, gt=GT, gt_box=(3, 2, 10, 7), gt_points=((6, 4), (8, 5)))


def test_huge_and_deep_inputs():
    for reply in (
        "<answer>" + "[" * 50_000 + "]" * 50_000 + "</answer>",
        "<answer>" + "{'a': " * 5_000 + "1" + "}" * 5_000 + "</answer>",
        "<think>" + "a. " * 60_000 + "</think><answer>[]</answer>",
        "x" * 3_000_000,
    ):
        parsed = parse_reply(reply)
        assert not parsed.ok
        _check_reply(reply, parsed, pred=PRED, gt=GT, gt_box=(3, 2, 10, 7), gt_points=((6, 4), (8, 5)))


@pytest.fixture(scope="module")
def shapes_env():
    env = gym.make("ReasonSegShapes-v0", segmenter="box", image_size=112)
    env.reset(seed=0)
    yield env
    env.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=any_reply, seed=st.integers(0, 50))
def test_env_step_never_raises(shapes_env, reply, seed):
    shapes_env.reset(seed=seed)
    _, reward, terminated, truncated, info = shapes_env.step(reply)
    lo, hi = shapes_env.unwrapped.reward_range
    assert math.isfinite(reward) and lo <= reward <= hi
    assert terminated and not truncated
    assert set(info["reward_terms"]) == set(TERM_NAMES)
    if info["parse_failure"] is not None:
        assert info["parse_failure"] in {r.value for r in FailureReason}

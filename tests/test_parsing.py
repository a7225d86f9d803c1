import pytest

from segzero_env.parsing import MAX_LITERAL_CHARS, parse_reply, think_format_ok
from segzero_env.types import AnswerSchema, FailureReason, ObjectAnswer

SEG = '{"bbox": [10, 20, 110, 220], "points_1": [50, 60], "points_2": [70, 180]}'
GOOD = f"<think>the red one</think>\n<answer>{SEG}</answer>"


def test_well_formed_seg_zero_reply():
    r = parse_reply(GOOD)
    assert r.ok and r.failure is None and r.detail == ""
    assert r.schema is AnswerSchema.SEG_ZERO
    assert r.think_format and r.strict_json and not r.box_inverted
    assert r.objects == (ObjectAnswer(box=(10.0, 20.0, 110.0, 220.0), points=((50.0, 60.0), (70.0, 180.0))),)
    assert r.n_answer_tags == 1
    assert r.answer_text == SEG


def test_python_literal_fallback_is_not_strict():
    # The Seg-Zero prompt's own example is single-quoted.
    r = parse_reply("<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>")
    assert r.ok and not r.strict_json
    assert r.objects[0].box == (10, 100, 200, 210)
    assert "Python literal" in r.detail


def test_floats_accepted():
    r = parse_reply('<answer>{"bbox": [1.5, 2, 3.25, 4], "points_1": [2, 3], "points_2": [2.5, 3.5]}</answer>')
    assert r.ok and r.objects[0].box == (1.5, 2.0, 3.25, 4.0)


@pytest.mark.parametrize(
    ("text", "reason", "needle"),
    [
        ("", FailureReason.EMPTY, ""),
        ("   \n\t ", FailureReason.EMPTY, ""),
        ("just text", FailureReason.NO_ANSWER_TAG, "no <answer>"),
        ("<think>x</think><answer>{}", FailureReason.UNCLOSED_ANSWER_TAG, "never closed"),
        ("<answer></answer>", FailureReason.INVALID_JSON, "empty"),
        ("<answer>{bbox: 1</answer>", FailureReason.INVALID_JSON, "JSON"),
        ('<answer>{"points_1": [1, 2]}</answer>', FailureReason.MISSING_KEY, "'bbox'"),
        ('<answer>{"bbox": [1, 2, 3, 4], "points_1": [1, 2]}</answer>', FailureReason.MISSING_KEY, "points_2"),
        (
            '<answer>{"bbox": [1, 2, 3], "points_1": [1, 2], "points_2": [1, 2]}</answer>',
            FailureReason.WRONG_LENGTH,
            "bbox has 3",
        ),
        (
            '<answer>{"bbox": [1, 2, 3, 4], "points_1": [1, 2, 3], "points_2": [1, 2]}</answer>',
            FailureReason.WRONG_LENGTH,
            "points_1",
        ),
        (
            '<answer>{"bbox": [[1, 2, 3, 4]], "points_1": [1, 2], "points_2": [1, 2]}</answer>',
            FailureReason.WRONG_LENGTH,
            "bbox",
        ),
        (
            '<answer>{"bbox": "1,2,3,4", "points_1": [1, 2], "points_2": [1, 2]}</answer>',
            FailureReason.WRONG_TYPE,
            "bbox",
        ),
        (
            '<answer>{"bbox": ["1", 2, 3, 4], "points_1": [1, 2], "points_2": [1, 2]}</answer>',
            FailureReason.NOT_A_NUMBER,
            "bbox[0]",
        ),
        (
            '<answer>{"bbox": [true, 2, 3, 4], "points_1": [1, 2], "points_2": [1, 2]}</answer>',
            FailureReason.NOT_A_NUMBER,
            "bool",
        ),
        (
            '<answer>{"bbox": [1, 2, 3, 4], "points_1": [NaN, 2], "points_2": [1, 2]}</answer>',
            FailureReason.NON_FINITE,
            "points_1[0]",
        ),
        (
            '<answer>{"bbox": [1, 2, 3, Infinity], "points_1": [1, 2], "points_2": [1, 2]}</answer>',
            FailureReason.NON_FINITE,
            "bbox[3]",
        ),
        (
            '<answer>{"bbox": [1e999, 2, 3, 4], "points_1": [1, 2], "points_2": [1, 2]}</answer>',
            FailureReason.NON_FINITE,
            "bbox[0]",
        ),
        (
            "<answer>{'bbox': [" + "9" * 400 + ", 2, 3, 4], 'points_1': [1, 2], 'points_2': [1, 2]}</answer>",
            FailureReason.NON_FINITE,
            "too large",
        ),
        ("<answer>42</answer>", FailureReason.WRONG_TYPE, "int"),
        ('<answer>[{"bbox_2d": [1, 2, 3, 4]}, 7]</answer>', FailureReason.WRONG_TYPE, "[1]"),
        ('<answer>[{"point_2d": [1, 2]}]</answer>', FailureReason.MISSING_KEY, "[0]"),
        ('<answer>[{"bbox_2d": [1, 2, 3, 4], "point_2d": [1]}]</answer>', FailureReason.WRONG_LENGTH, "[0].point_2d"),
    ],
)
def test_typed_failures(text, reason, needle):
    r = parse_reply(text)
    assert r.failure is reason, r
    assert not r.ok and r.objects == () and r.schema is None
    assert needle in r.detail


def test_non_string_and_too_long():
    for value in (None, 3, b"<answer>{}</answer>", ["x"], {"bbox": [1, 2, 3, 4]}):
        assert parse_reply(value).failure is FailureReason.NOT_A_STRING
    r = parse_reply("x" * 1001, max_chars=1000)
    assert r.failure is FailureReason.TOO_LONG and "1001" in r.detail
    assert parse_reply(GOOD + " " * 10, max_chars=len(GOOD) + 10).ok


def test_inverted_box_is_swapped_and_flagged():
    r = parse_reply('<answer>{"bbox": [110, 220, 10, 20], "points_1": [50, 60], "points_2": [70, 180]}</answer>')
    assert r.ok and r.box_inverted and "inverted" in r.detail
    assert r.objects[0].box == (10, 20, 110, 220)
    r = parse_reply('<answer>{"bbox": [10, 220, 110, 20], "points_1": [50, 60], "points_2": [70, 180]}</answer>')
    assert r.objects[0].box == (10, 20, 110, 220)


def test_first_answer_tag_wins_and_tags_are_counted():
    other = '{"bbox": [0, 0, 1, 1], "points_1": [0, 0], "points_2": [1, 1]}'
    r = parse_reply(f"<think>a</think><answer>{SEG}</answer> and <answer>{other}</answer>")
    assert r.ok and r.n_answer_tags == 2 and r.objects[0].box == (10, 20, 110, 220)
    assert "2 answer tags" in r.detail
    # The regular-expression rule: a lazy first group lets the whole reply still match.
    assert r.think_format
    # A broken first answer is a failure even if a later one is fine.
    assert parse_reply(f"<answer>nope</answer><answer>{other}</answer>").failure is FailureReason.INVALID_JSON


def test_coordinates_out_of_image_kept_unclipped():
    r = parse_reply('<answer>{"bbox": [-5, -7, 9000, 900], "points_1": [-1, 2], "points_2": [5000, 3]}</answer>')
    assert r.ok and r.objects[0].box == (-5, -7, 9000, 900) and r.objects[0].points[1] == (5000, 3)


def test_vision_reasoner_list_with_duplicates_kept():
    item = '{"bbox_2d": [1, 2, 30, 40], "point_2d": [5, 6]}'
    r = parse_reply(f"<think>t</think><answer>[{item}, {item}]</answer>")
    assert r.ok and r.schema is AnswerSchema.VISION_REASONER
    assert len(r.objects) == 2 and r.objects[0] == r.objects[1]
    assert r.objects[0].points == ((5.0, 6.0),)
    assert r.item_checks == ((True, True), (True, True))


def test_list_without_points_is_qwen_grounding():
    r = parse_reply(
        '<answer>[{"bbox_2d": [1, 2, 3, 4], "label": "cup"}, {"bbox_2d": [5, 6, 7, 8], "point_2d": [6, 7]}]</answer>'
    )
    assert r.ok and r.schema is AnswerSchema.QWEN_GROUNDING
    assert r.objects[0].points == () and r.objects[1].points == ((6.0, 7.0),)
    assert r.item_checks == ((True, False), (True, True))


def test_partial_list_failure_still_reports_item_checks():
    r = parse_reply(
        '<answer>[{"bbox_2d": [1, 2, 3, 4], "point_2d": [1, 2]}, {"bbox_2d": [1, 2], '
        '"point_2d": [1, 2]}, {"bbox_2d": [1, 2, 3, 4], "point_2d": "x"}]</answer>'
    )
    assert r.failure is FailureReason.WRONG_LENGTH and "[1].bbox_2d" in r.detail
    assert r.item_checks == ((True, True), (False, True), (True, False))


def test_single_bbox_2d_dict_is_one_element_list():
    r = parse_reply('<answer>{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}</answer>')
    assert r.ok and r.schema is AnswerSchema.VISION_REASONER and len(r.objects) == 1


def test_qwen_native_grounding_without_tags():
    fenced = 'Here it is:\n```json\n[\n  {"bbox_2d": [12, 34, 56, 78], "label": "the cup"}\n]\n```\nDone.'
    r = parse_reply(fenced)
    assert r.ok and r.schema is AnswerSchema.QWEN_GROUNDING and r.n_answer_tags == 0
    assert r.objects == (ObjectAnswer(box=(12.0, 34.0, 56.0, 78.0)),)
    bare = parse_reply('[{"bbox_2d": [12, 34, 56, 78], "point_2d": [20, 40], "label": "cup"}]')
    assert bare.ok and bare.schema is AnswerSchema.QWEN_GROUNDING and bare.objects[0].points == ((20.0, 40.0),)
    # Fenced text that is not grounding JSON is simply "no answer".
    assert parse_reply("```python\nprint(1)\n```").failure is FailureReason.NO_ANSWER_TAG
    assert parse_reply('```json\n{"bbox": [1, 2, 3, 4]}\n```').failure is FailureReason.NO_ANSWER_TAG
    assert parse_reply("```json\n[1, 2\n```").failure is FailureReason.NO_ANSWER_TAG


def test_fenced_answer_body_is_unwrapped():
    r = parse_reply(f"<think>x</think><answer>```json\n{SEG}\n```</answer>")
    assert r.ok and r.strict_json and r.think_format


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think><answer>b</answer>", True),
        ("<think></think><answer></answer>", True),
        ("<think>a\nb</think>\n\n <answer>\n{}\n</answer>", True),
        ("<think>a</think>x<answer>b</answer>", False),
        ("<think>a</think><answer>b</answer>trailing", False),
        ("lead<think>a</think><answer>b</answer>", False),
        ("<think>a</think>", False),
        ("<answer>b</answer>", False),
        ("<think>a</think><answer>", False),
        ("<think>a</think></think> <answer>b</answer>", True),
        ("<think>a</think>x</think><answer>b</answer>", True),
        ("<think></think><answer></answer></answer>", True),
    ],
)
def test_think_format_matches_the_regular_expression(text, expected):
    import re

    assert bool(re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", text, re.DOTALL)) is expected
    assert think_format_ok(text) is expected
    assert parse_reply("  \n" + text + "\n ").think_format is expected


def test_adversarial_long_replies_stay_fast():
    import time

    nasty = [
        "<think>" + "</think><answer>" * 12_000 + "x",
        "<think>" + "</think>" * 20_000 + "</answer>",
        "<answer>" + "[" * 100_000 + "</answer>",
        "<answer>" + "{'a': " * 30_000 + "</answer>",
        "```" * 50_000,
        "<answer>" + "1," * (MAX_LITERAL_CHARS // 2 + 10) + "</answer>",
    ]
    start = time.perf_counter()
    for text in nasty:
        r = parse_reply(text)
        assert not r.ok
    # Generous bound: the quadratic regex would take minutes on these.
    assert time.perf_counter() - start < 10


def test_megabyte_reply_is_rejected_without_scanning():
    r = parse_reply(GOOD * 100_000)
    assert r.failure is FailureReason.TOO_LONG and not r.think_format


def test_unicode_and_control_characters():
    r = parse_reply("<think>猫は左にいる。\x00</think><answer>" + SEG + "</answer>")
    assert r.ok and r.think_format
    assert parse_reply("<answer>\x00</answer>").failure is FailureReason.INVALID_JSON
    assert parse_reply("\ud800").failure is FailureReason.NO_ANSWER_TAG


def test_think_format_agrees_with_the_regular_expression_on_random_text():
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    pattern = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
    pieces = st.sampled_from(
        [
            "<think>",
            "</think>",
            "<answer>",
            "</answer>",
            " ",
            "\n",
            "\x1c",
            "\u3000",
            "\xa0",
            "a",
            "<",
            ">",
            "/",
            "think",
            "answer",
        ]
    )

    @settings(max_examples=1500, deadline=None)
    @given(st.lists(pieces, max_size=14).map("".join))
    def check(text):
        stripped = text.strip()
        assert think_format_ok(stripped) == bool(pattern.fullmatch(stripped))

    check()


@pytest.mark.parametrize("reply", ["<think>none</think> <answer>[]</answer>", "<answer> ```json\n[]\n``` </answer>"])
def test_the_empty_list_is_a_valid_no_object_answer(reply):
    r = parse_reply(reply)
    assert r.failure is None and r.no_object and r.objects == () and not r.ok
    assert r.schema is AnswerSchema.VISION_REASONER and r.strict_json
    assert not parse_reply('<answer>[{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}]</answer>').no_object
    assert not parse_reply("<answer>{}</answer>").no_object  # an empty object is not the documented form


def test_numbers_reads_exactly_the_finite_real_numbers():
    import math
    import random

    from segzero_env.parsing_schemas import ParseError, numbers

    def rule(value, n):  # the documented rule: a list (or tuple) of n finite numbers that are not bools
        if not isinstance(value, (list, tuple)) or len(value) != n:
            return None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return None
        try:
            floats = tuple(float(v) for v in value)
        except OverflowError:
            return None
        return floats if all(map(math.isfinite, floats)) else None

    rng = random.Random(0)
    scalars = [0, -0.0, 1, 2.5, True, False, None, "3", float("nan"), float("inf"), -float("inf"), 10**400, 2**63]
    values = [(), [], "abcd", {"x": 1}, 5, ([1, 2],)]
    values += [[rng.choice(scalars) for _ in range(rng.choice([1, 2, 3, 4, 5]))] for _ in range(3000)]
    values += [tuple(v) for v in values[-500:]]
    refused = 0
    for value in values:
        for n in (2, 4):
            got = numbers(value, n, "bbox")
            expected = rule(value, n)
            assert numbers(value, n) == expected, value  # without a key: None where refused, no detail
            if expected is None:
                refused += 1
                assert type(got) is ParseError and got.detail.startswith("bbox"), value
            else:
                assert got == expected and all(type(f) is float for f in got), value
    assert 0 < refused < 2 * len(values)


def _sz(bbox: str = "[1, 2, 3, 4]", p1: str = "[1, 2]", p2: str = "[3, 4]") -> str:
    return f'{{"bbox": {bbox}, "points_1": {p1}, "points_2": {p2}}}'


_BAD_VALUES = [  # (answer, reason, detail)
    (_sz(bbox='"abcd"'), "wrong_type", "bbox must be a list of 4 numbers, got str"),
    (_sz(bbox="[1, 2, 3]"), "wrong_length", "bbox has 3 values, expected 4"),
    (_sz(bbox='[1, "2", 3, 4]'), "not_a_number", "bbox[1] is str '2', expected a number"),
    (_sz(bbox="[1, 2, true, 4]"), "not_a_number", "bbox[2] is bool True, expected a number"),
    (_sz(bbox="[1, 2, 3, NaN]"), "non_finite", "bbox[3] is nan"),
    (_sz(bbox="[1e400, 2, 3, 4]"), "non_finite", "bbox[0] is inf"),
    (_sz(p2="[3, 1" + "0" * 400 + "]"), "non_finite", "points_2[1] is too large for a float"),
    (
        '{"bbox": [1, 2, 3, 4], "points_1": [1, 2]}',
        "missing_key",
        "answer has no 'points_2' key (Seg-Zero answers need bbox, points_1, points_2)",
    ),
    (_sz(p1="null"), "wrong_type", "points_1 must be a list of 2 numbers, got NoneType"),
    (
        '{"bbox": [1, 2, 3, 4]}',
        "missing_key",
        "answer has no 'points_1' key (Seg-Zero answers need bbox, points_1, points_2)",
    ),
    (_sz(bbox="[1, 2, 3]", p1="[1]"), "wrong_length", "bbox has 3 values, expected 4"),
    (
        '[{"bbox_2d": [1, 2, 3, 4], "point_2d": [1, "x"]}]',
        "not_a_number",
        "[0].point_2d[1] is str 'x', expected a number",
    ),
    (
        '[{"bbox_2d": [1, 2, 3, 4], "point_2d": [1, 2]}, {"bbox_2d": [1, 2, 3]}]',
        "wrong_length",
        "[1].bbox_2d has 3 values, expected 4",
    ),
    (
        '[{"bbox_2d": [1, 2, 3, null], "point_2d": [1, "x"]}]',
        "not_a_number",
        "[0].bbox_2d[3] is NoneType None, expected a number",
    ),
    ("[5]", "wrong_type", "[0] is int, expected an object"),
    ('[{"point_2d": [1, 2]}]', "missing_key", "[0] has no 'bbox_2d' key"),
    ('{"bbox": [1, 2, "3", 4], "positive_points": [[1, 2]]}', "not_a_number", "bbox[2] is str '3', expected a number"),
    (
        '{"positive_points": [[1, 2], [3, null]]}',
        "not_a_number",
        "positive_points[1][1] is NoneType None, expected a number",
    ),
]


@pytest.mark.parametrize(("answer", "reason", "detail"), _BAD_VALUES)
def test_a_bad_value_fails_with_its_reason_and_a_detail_naming_it(answer, reason, detail):
    r = parse_reply(f"<think>t</think><answer>{answer}</answer>")
    assert r.failure is not None and (r.failure.value, r.detail) == (reason, detail)


def test_elements_after_a_failing_one_are_still_counted():
    r = parse_reply(
        '<answer>[{"bbox_2d": [1, 2, 3, 4], "point_2d": [1, 2]}, {"bbox_2d": [1, 2, "3", 4], "point_2d": [1, 2]}, '
        '{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [1, 2, 3, 4], "point_2d": [1, NaN]}, 7]</answer>'
    )
    assert r.failure is FailureReason.NOT_A_NUMBER and r.detail.startswith("[1].bbox_2d[2]")
    assert r.item_checks == ((True, True), (False, True), (True, False), (True, False), (False, False))

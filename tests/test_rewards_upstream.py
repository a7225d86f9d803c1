"""The ``upstream`` rules: Seg-Zero's and VisionReasoner's training rewards on every string, quirks included.

Each quirk is pinned with a hand-written reply and the value the upstream reward gives it (derived from
reading the upstream code), next to the value of the ``robust`` rules. The same replies are also scored
by the benchmark's re-implementation of the published rules (``benchmarks/upstream_baseline.py``), and a
few thousand generated replies must agree with it term by term.
"""

import math
import re
import sys

import pytest
from benchmark_scripts import load_benchmark

from segzero_env.parsing import parse_reply, think_format_ok
from segzero_env.rewards import PRESETS, TERM_NAMES, TERM_RANGES, RewardInput, compute_terms
from segzero_env.rewards.upstream import answer_block, first_brace_block
from segzero_env.types import ObjectAnswer

baseline = load_benchmark("upstream_baseline")

GT_BOX = (250, 180, 410, 330)
GT_POINTS = ((300, 250), (360, 260))
GOOD = '{"bbox": [250, 180, 410, 330], "points_1": [300, 250], "points_2": [360, 260]}'
VR_GOOD = '[{"bbox_2d": [250, 180, 410, 330], "point_2d": [300, 250]}]'
SZ = ("think_format", "answer_format", "box_iou", "box_l1", "points")
VR = ("vr_format", "vr_accuracy", "non_repeat")


def terms(reply, rules, gt_box=GT_BOX, gt_points=GT_POINTS, gt_objects=None):
    box = tuple(float(v) for v in gt_box)
    points = tuple((float(x), float(y)) for x, y in gt_points)
    inp = RewardInput(reply, parse_reply(reply), box, points, None, None, 840, gt_objects=gt_objects)
    return compute_terms(inp, rules)


def sz(reply, rules="upstream", **gt):
    return tuple(terms(reply, rules, **gt)[k] for k in SZ)


def vr(reply, rules="upstream", **gt):
    return tuple(terms(reply, rules, **gt)[k] for k in VR)


def baseline_sz(reply, gt_box=GT_BOX, gt_points=GT_POINTS):
    t = baseline.seg_zero_terms(reply, baseline.seg_zero_solution(gt_box, gt_points))
    return tuple(t[k] for k in SZ)


def baseline_vr(reply, gt_box=GT_BOX, gt_points=GT_POINTS):
    t = baseline.vision_reasoner_terms(reply, baseline.vision_reasoner_solution([(gt_box, gt_points[0])]))
    return tuple(float(t[k]) for k in VR)


# (reply, upstream Seg-Zero terms, robust terms); terms in SZ order: think, format, IoU, L1, points.
SEG_ZERO_QUIRKS = {
    "canonical reply": (f"<think>red cup</think><answer>{GOOD}</answer>", (1, 1, 1, 1, 1), (1, 1, 1, 1, 1)),
    "leading newline fails the think format (raw reply, no strip)": (
        f"\n<think>red cup</think><answer>{GOOD}</answer>",
        (0, 1, 1, 1, 1),
        (1, 1, 1, 1, 1),
    ),
    "trailing newline fails the think format": (
        f"<think>red cup</think><answer>{GOOD}</answer>\n",
        (0, 1, 1, 1, 1),
        (1, 1, 1, 1, 1),
    ),
    "braces in the reasoning are read as the answer": (
        f"<think>the {{red}} cup</think><answer>{GOOD}</answer>",
        (1, 0, 0, 0, 0),
        (1, 1, 1, 1, 1),
    ),
    "a JSON answer in the reasoning is the one scored": (
        f'<think>not {{"bbox": [0, 0, 9, 9], "points_1": [1, 1], "points_2": [2, 2]}}</think><answer>{GOOD}</answer>',
        (1, 1, 0, 0, 0),
        (1, 1, 1, 1, 1),
    ),
    "no answer tags: the bare JSON is still scored": (GOOD, (0, 1, 1, 1, 1), (0, 0, 0, 0, 0)),
    "inverted box: not swapped, 0 on IoU, L1 and points": (
        '<think>a</think><answer>{"bbox": [410, 330, 250, 180], "points_1": [300, 250], "points_2": [360, 260]}'
        "</answer>",
        (1, 1, 0, 0, 0),
        (1, 1, 1, 1, 1),
    ),
    "single-quoted dict (the prompt's own example): 0 on format and accuracy": (
        f"<think>a</think><answer>{GOOD.replace(chr(34), chr(39))}</answer>",
        (1, 0, 0, 0, 0),
        (1, 0, 1, 1, 1),
    ),
    "numeric strings pass the format; in points int() reads them": (
        '<think>a</think><answer>{"bbox": [250, 180, 410, 330], "points_1": ["300", "250"], '
        '"points_2": ["360", "260"]}</answer>',
        (1, 1, 1, 1, 1),
        (1, 0, 0, 0, 0),
    ),
    "numeric strings in the box: format 1, accuracy 0": (
        '<think>a</think><answer>{"bbox": ["250", "180", "410", "330"], "points_1": [300, 250], '
        '"points_2": [360, 260]}</answer>',
        (1, 1, 0, 0, 0),
        (1, 0, 0, 0, 0),
    ),
    "NaN passes the format, fails every comparison": (
        '<think>a</think><answer>{"bbox": [250, 180, 410, NaN], "points_1": [300, 250], '
        '"points_2": [360, 260]}</answer>',
        (1, 1, 0, 0, 0),
        (1, 0, 0, 0, 0),
    ),
    "bools are numbers (true == 1) and pass the format": (
        '<think>a</think><answer>{"bbox": [250, 180, 410, 330], "points_1": [300, 250], '
        '"points_2": [true, false]}</answer>',
        (1, 1, 1, 1, 0),
        (1, 0, 0, 0, 0),
    ),
    "box without points: IoU and L1 from bbox alone": (
        '<think>a</think><answer>{"bbox": [250, 180, 410, 330]}</answer>',
        (1, 0, 1, 1, 0),
        (1, 0, 0, 0, 0),
    ),
    "null points: IoU and L1 still count": (
        '<think>a</think><answer>{"bbox": [250, 180, 410, 330], "points_1": null, "points_2": [360, 260]}</answer>',
        (1, 0, 1, 1, 0),
        (1, 0, 0, 0, 0),
    ),
    "malformed points: IoU and L1 still count": (
        '<think>a</think><answer>{"bbox": [250, 180, 410, 330], "points_1": [300], "points_2": [360, 260]}</answer>',
        (1, 0, 1, 1, 0),
        (1, 0, 0, 0, 0),
    ),
    "float points are truncated with int() before the in-box test": (
        '<think>a</think><answer>{"bbox": [250, 180, 409, 330], "points_1": [409.9, 250], '
        '"points_2": [360, 260]}</answer>',
        (1, 1, 1, 1, 1),
        (1, 1, 1, 1, 0),
    ),
    "extra point values are ignored by the points term (format needs exactly 2)": (
        '<think>a</think><answer>{"bbox": [250, 180, 410, 330], "points_1": [300, 250, 7], '
        '"points_2": [360, 260]}</answer>',
        (1, 0, 1, 1, 1),
        (1, 0, 0, 0, 0),
    ),
    "bbox_2d dict: no 'bbox' key, so 0 on format and accuracy": (
        '<think>a</think><answer>{"bbox_2d": [250, 180, 410, 330], "point_2d": [300, 250]}</answer>',
        (1, 0, 0, 0, 0),
        (1, 0, 1, 1, 0),
    ),
    "points in the other order still count (best of the two orderings)": (
        '<think>a</think><answer>{"bbox": [250, 180, 410, 330], "points_1": [360, 260], '
        '"points_2": [300, 250]}</answer>',
        (1, 1, 1, 1, 1),
        (1, 1, 1, 1, 1),
    ),
    "Infinity in the box: format 1; the points still count, IoU and L1 do not": (
        '<think>a</think><answer>{"bbox": [238.5, 184, Infinity, 322], "points_1": [271, 192], '
        '"points_2": [387, 227]}</answer>',
        (1, 1, 0, 0, 1),
        (1, 0, 0, 0, 0),
    ),
    "code fence in the answer: the first {...} is read anyway": (
        f"<think>a</think><answer>```json\n{GOOD}\n```</answer>",
        (1, 1, 1, 1, 1),
        (1, 1, 1, 1, 1),
    ),
}


@pytest.mark.parametrize("name", list(SEG_ZERO_QUIRKS))
def test_seg_zero_quirk(name):
    reply, upstream_value, robust_value = SEG_ZERO_QUIRKS[name]
    assert sz(reply) == upstream_value
    assert baseline_sz(reply) == upstream_value  # the re-implementation of the published rules agrees
    assert sz(reply, "robust") == robust_value


def test_seg_zero_one_pixel_overlap_scores_zero_iou():
    # Areas are inclusive (+1) but the overlap is tested with "<": an exact match of a one-pixel-wide
    # GT box has no intersection upstream.
    thin = (250, 180, 250, 330)
    reply = (
        '<think>a</think><answer>{"bbox": [250, 180, 250, 330], "points_1": [250, 200], '
        '"points_2": [250, 300]}</answer>'
    )
    gt = {"gt_box": thin, "gt_points": ((250, 200), (250, 300))}
    assert sz(reply, **gt) == (1, 1, 0, 1, 1) == baseline_sz(reply, **gt)
    assert sz(reply, "robust", **gt) == (1, 1, 1, 1, 1)
    general = reply.replace("]}</answer>", '], "label": "x"}</answer>')  # not canonical: the general path
    assert sz(general, **gt) == (1, 1, 0, 1, 1) == baseline_sz(general, **gt)
    # VisionReasoner clips the overlap at 0 after adding 1: there the same box counts.
    vr_reply = '<think>a</think><answer>[{"bbox_2d": [250, 180, 250, 330], "point_2d": [250, 200]}]</answer>'
    assert terms(vr_reply, "upstream", **gt)["vr_accuracy"] == 3.0


@pytest.mark.parametrize(
    ("answer", "gt_box", "gt_points", "accuracy"),
    [
        # IoU exactly 0.5 (inclusive areas 50 of 100) is not above 0.5
        ("[0, 0, 4, 9], [1, 1], [2, 2]", (0, 0, 9, 9), ((1, 1), (2, 2)), (0, 1, 1)),
        # mean point distance exactly 100 is not below 100
        ("[250, 180, 470, 330], [400, 250], [460, 260]", (250, 180, 410, 330), ((300, 250), (360, 260)), (1, 0, 0)),
        # points in the other order: the crossed pairing counts
        ("[250, 180, 260, 330], [255, 300], [255, 200]", (250, 180, 260, 330), ((255, 200), (255, 300)), (1, 1, 1)),
        # mean L1 exactly 10 is not below 10
        ("[260, 190, 420, 340], [300, 250], [360, 260]", (250, 180, 410, 330), ((300, 250), (360, 260)), (1, 0, 1)),
    ],
)
def test_seg_zero_thresholds_on_both_paths(answer, gt_box, gt_points, accuracy):
    box, p1, p2 = answer.split("], ")
    canonical = f'<think>a</think><answer>{{"bbox": {box}], "points_1": {p1}], "points_2": {p2}}}</answer>'
    # The extra key makes the answer non-canonical: the rules read it on the general path.
    general = canonical.replace("]}</answer>", '], "label": "x"}</answer>')
    gt = {"gt_box": gt_box, "gt_points": gt_points}
    for reply in (canonical, general):
        assert sz(reply, **gt) == (1, 1, *accuracy) == baseline_sz(reply, **gt), reply


def test_seg_zero_answer_format_needs_both_points_of_two_values():
    for p1, p2 in (("[1, 2, 3]", "[3, 4]"), ("[1, 2]", "[3, 4, 5]"), ("[1, 2]", "[3]"), ("[1, 2]", '"34"')):
        reply = f'<think>a</think><answer>{{"bbox": [250, 180, 410, 330], "points_1": {p1}, "points_2": {p2}}}</answer>'
        assert sz(reply)[:2] == (1, 0) == baseline_sz(reply)[:2], reply


def test_vision_reasoner_rules_at_their_boundaries():
    gt = {"gt_box": (0, 0, 9, 9), "gt_points": ((1, 1), (2, 2))}
    # IoU exactly 0.5 (inclusive areas 50 of 100) is not above 0.5: L1 and the point count, the IoU not.
    half = '<think>a</think><answer>[{"bbox_2d": [0, 0, 4, 9], "point_2d": [1, 1]}]</answer>'
    assert vr(half, **gt) == (3, 2, 1) == baseline_vr(half, **gt)
    # An all-bool box makes a bool array, which numpy cannot subtract: upstream scores 0.
    bools = '<think>a</think><answer>[{"bbox_2d": [true, false, true, true], "point_2d": [1, 1]}]</answer>'
    assert vr(bools, gt_box=(1, 0, 1, 1), gt_points=((1, 1), (1, 1))) == (3, 0, 1)
    assert baseline_vr(bools, gt_box=(1, 0, 1, 1), gt_points=((1, 1), (1, 1))) == (3, 0, 1)
    # A second prediction beyond int64 makes an object array (numpy's path): the same thresholds hold.
    huge = '{"bbox_2d": [100000000000000000000, 0, 1, 1], "point_2d": [1, 1]}'
    for first, accuracy in (
        ('{"bbox_2d": [0, 0, 4, 9], "point_2d": [1, 1]}', 1.0),
        ('{"bbox_2d": [0, 0, 40, 9], "point_2d": [31, 1]}', 0.5),
    ):
        reply = f"<think>a</think><answer>[{first}, {huge}]</answer>"  # IoU 0.5 exactly; a point 30 px away
        assert vr(reply, **gt)[1] == accuracy == baseline_vr(reply, **gt)[1], reply
    # A bbox_2d of 3 or 5 values earns no format credit; its point still does.
    for box in ("[0, 0, 4]", "[0, 0, 4, 9, 9]"):
        reply = f'<think>a</think><answer>[{{"bbox_2d": {box}, "point_2d": [1, 1]}}]</answer>'
        assert vr(reply, **gt) == (2, 0, 1) == baseline_vr(reply, **gt)


def test_seg_zero_inverted_box_l1_uses_the_coordinates_as_written():
    # Not swapped: against a narrow GT box, an inverted box can still be within 10 px on average.
    gt = {"gt_box": (250, 180, 260, 330), "gt_points": ((255, 200), (255, 300))}
    reply = (
        '<think>a</think><answer>{"bbox": [256, 180, 254, 330], "points_1": [255, 200], '
        '"points_2": [255, 300]}</answer>'
    )
    assert sz(reply, **gt) == (1, 1, 0, 1, 0) == baseline_sz(reply, **gt)


# (reply, upstream VR terms, robust terms); VR order: vr_format, vr_accuracy, non_repeat.
VISION_REASONER_QUIRKS = {
    "canonical reply": (f"<think>The red cup.</think><answer>{VR_GOOD}</answer>", (3, 3, 1), (3, 3, 1)),
    "non_repeat splits on '.' only": (f"<think>Red! Red! Red!</think><answer>{VR_GOOD}</answer>", (3, 3, 1), (3, 3, 0)),
    "one repeated sentence is tolerated": (
        f"<think>I see. Look. Look.</think><answer>{VR_GOOD}</answer>",
        (3, 3, 1),
        (3, 3, 0),
    ),
    "two repeats fail": (f"<think>I see. Look. Look. Look.</think><answer>{VR_GOOD}</answer>", (3, 3, 0), (3, 3, 0)),
    "the tag is part of the first sentence, so it repeats nothing": (
        f"<think>Look. Look. Look.</think><answer>{VR_GOOD}</answer>",
        (3, 3, 1),
        (3, 3, 0),
    ),
    "empty reasoning scores 1": (f"<think></think><answer>{VR_GOOD}</answer>", (3, 3, 1), (3, 3, 0)),
    "the whole reply is read, text after the answer included": (
        f"<think>Red.</think><answer>{VR_GOOD}</answer> Blue. Blue. Blue. Blue.",
        (2, 3, 0),
        (2, 3, 1),
    ),
    "a second think block is read too": (
        f"<think>Red.</think><think>Blue. Blue. Blue. Blue.</think><answer>{VR_GOOD}</answer>",
        (3, 3, 0),
        (3, 3, 1),
    ),
    "leading newline fails the think format": (f"\n<think>a</think><answer>{VR_GOOD}</answer>", (2, 3, 1), (3, 3, 1)),
    "point_2d without bbox_2d still earns its format credit": (
        '<think>a</think><answer>[{"point_2d": [300, 250]}]</answer>',
        (2, 0, 1),
        (1, 0, 1),
    ),
    "an element without point_2d makes the accuracy 0": (
        '<think>a</think><answer>[{"bbox_2d": [250, 180, 410, 330]}]</answer>',
        (2, 0, 1),
        (2, 2, 1),
    ),
    "an element that breaks the loop stops the format count": (
        f"<think>a</think><answer>[5, {VR_GOOD[1:-1]}]</answer>",
        (1, 0, 1),
        (2, 0, 1),
    ),
    "a lone dict is iterated by its keys: format and accuracy 0": (
        f"<think>a</think><answer>{VR_GOOD[1:-1]}</answer>",
        (1, 0, 1),
        (3, 3, 1),
    ),
    "single quotes: not JSON": (
        f"<think>a</think><answer>{VR_GOOD.replace(chr(34), chr(39))}</answer>",
        (1, 0, 1),
        (3, 3, 1),
    ),
    "strings in a box: format counts, accuracy 0": (
        '<think>a</think><answer>[{"bbox_2d": ["250", 180, 410, 330], "point_2d": [300, 250]}]</answer>',
        (3, 0, 1),
        (2, 0, 1),
    ),
    "inverted box: not swapped": (
        '<think>a</think><answer>[{"bbox_2d": [410, 330, 250, 180], "point_2d": [300, 250]}]</answer>',
        (3, 0, 1),
        (3, 3, 1),
    ),
    "a box 2**32 px on each side passes the IoU: its int64 area wraps to 0": (
        '<think>a</think><answer>[{"bbox_2d": [-2147483648, -2147483648, 2147483647, 2147483647], '
        '"point_2d": [300, 250]}]</answer>',
        (3, 2, 1),
        (3, 1, 1),
    ),
}


@pytest.mark.parametrize("name", list(VISION_REASONER_QUIRKS))
def test_vision_reasoner_quirk(name):
    reply, upstream_value, robust_value = VISION_REASONER_QUIRKS[name]
    assert vr(reply) == upstream_value
    assert baseline_vr(reply) == upstream_value
    assert vr(reply, "robust") == robust_value


def test_vision_reasoner_keeps_120_predictions():
    item = VR_GOOD[1:-1]
    reply = f"<think>a</think><answer>[{', '.join([item] * 121)}]</answer>"
    assert terms(reply, "upstream")["vr_accuracy"] == pytest.approx(3 / 120)
    assert baseline_vr(reply)[1] == pytest.approx(3 / 120)
    assert terms(reply, "robust")["vr_accuracy"] == pytest.approx(3 / 121)
    # Every element is read before the cut: one without point_2d beyond 120 still makes it 0.
    late = f'<think>a</think><answer>[{", ".join([item] * 121)}, {{"bbox_2d": [1, 2, 3, 4]}}]</answer>'
    assert terms(late, "upstream")["vr_accuracy"] == 0.0 == baseline_vr(late)[1]


def test_vision_reasoner_hungarian_matching_on_two_objects():
    gts = (ObjectAnswer((0, 0, 99, 99), ((50, 50),)), ObjectAnswer((200, 200, 299, 299), ((250, 250),)))
    reply = (
        '<think>a</think><answer>[{"bbox_2d": [200, 200, 299, 299], "point_2d": [250, 250]}, '
        '{"bbox_2d": [0, 0, 99, 119], "point_2d": [90, 90]}]</answer>'
    )
    # P1-G2 scores 3; P2-G1: IoU 100*100/(100*120) > 0.5, L1 5 < 10, point 56.6 px away -> 2.
    assert terms(reply, "upstream", gt_objects=gts)["vr_accuracy"] == pytest.approx(2.5)


def test_the_presets_name_their_rules():
    assert PRESETS["seg-zero"].rules == PRESETS["vision-reasoner"].rules == "upstream"
    assert PRESETS["seg-zero-robust"].rules == PRESETS["vision-reasoner-robust"].rules == "robust"
    assert PRESETS["mask-iou"].rules == "robust"
    assert dict(PRESETS["seg-zero"].weights) == dict(PRESETS["seg-zero-robust"].weights)
    with pytest.raises(ValueError, match="valid rules: robust, upstream"):
        compute_terms(RewardInput("", parse_reply(""), None, None, None, None, 840), "exact")


# --------------------------------------------------------------------------- scanners against the regexes


@pytest.mark.parametrize("seed", range(3))
def test_scanners_match_the_regular_expressions(seed):
    import random

    rng = random.Random(seed)
    pieces = [
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        "{",
        "}",
        "{}",
        " ",
        "\n",
        "\u00a0",
        "\u2003",
        "a",
        '"bbox"',
        "[1]",
        "\t",
        "\x1c",
        "\x85",
    ]
    brace = re.compile(r"{[^}]+}")
    answer = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
    layout = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        m = brace.search(text)
        assert first_brace_block(text) == (m.group(0) if m else None), text
        m = answer.search(text)
        assert answer_block(text) == (m.group(1) if m else None), text
        assert think_format_ok(text) == bool(layout.fullmatch(text)), text


# --------------------------------------------------------------------------- generated replies


REPLIES = baseline.generate_replies(3000, seed=11)


def test_generated_replies_agree_with_the_published_rules_term_by_term():
    sol_sz = baseline.seg_zero_solution(GT_BOX, GT_POINTS)
    sol_vr = baseline.vision_reasoner_solution([(GT_BOX, GT_POINTS[0])])
    disagreements = []
    for reply in REPLIES:
        ours = terms(reply, "upstream")
        ref = {**baseline.seg_zero_terms(reply, sol_sz), **baseline.vision_reasoner_terms(reply, sol_vr)}
        disagreements += [(k, ours[k], v, reply) for k, v in ref.items() if ours[k] != v]
    assert disagreements == []
    # The generator reaches both sides of every 0/1 term.
    assert {terms(r, "upstream")["points"] for r in REPLIES[:400]} == {0.0, 1.0}


def test_the_agreement_script_counts_replies_and_differences(capsys, monkeypatch):
    script = load_benchmark("reward_agreement")
    assert script.disagreements(range(5, 6)) == (2000, 0)
    assert capsys.readouterr().out == ""
    # a rule set that scores every think format 0 is caught on the replies where upstream gives 1
    wrong = lambda inp, rules: {**compute_terms(inp, rules), "think_format": 0.0}  # noqa: E731
    monkeypatch.setattr(script, "compute_terms", wrong)
    checked, differ = script.disagreements(range(5, 6), show=1)
    assert checked == 2000 and 0 < differ < 2000
    assert capsys.readouterr().out.count("differs: ") == 1


def test_generated_replies_invariants_across_presets():
    for reply in REPLIES[:1500]:
        by_rules = {rules: terms(reply, rules) for rules in ("robust", "upstream")}
        for values in by_rules.values():
            assert list(values) == list(TERM_NAMES)
            for name, value in values.items():
                lo, hi = TERM_RANGES[name]
                assert lo <= value <= hi and not math.isnan(value), (name, value, reply)
        up, rob = by_rules["upstream"], by_rules["robust"]
        # A reply with no layout upstream has none after stripping either... and the reverse holds
        # only when the reply has no surrounding whitespace.
        if up["think_format"]:
            assert rob["think_format"] == 1.0
        if reply == reply.strip():
            assert up["think_format"] == rob["think_format"]
        for preset in PRESETS.values():
            total = preset.combine(by_rules[preset.rules])
            lo, hi = preset.reward_range
            assert lo <= total <= hi


def test_canonical_replies_differ_between_rule_sets_only_on_one_pixel_overlaps():
    import random

    rng = random.Random(5)
    for _ in range(1500):
        x1, y1 = rng.randint(200, 300), rng.randint(150, 250)
        x2, y2 = x1 + rng.randint(0, 220), y1 + rng.randint(0, 200)
        pts = [[rng.randint(x1 - 5, x2 + 5), rng.randint(y1 - 5, y2 + 5)] for _ in range(2)]
        reply = (
            f'<think>The cup. It is red.</think><answer>{{"bbox": [{x1}, {y1}, {x2}, {y2}], '
            f'"points_1": {pts[0]}, "points_2": {pts[1]}}}</answer>'
        )
        up, rob = terms(reply, "upstream"), terms(reply, "robust")
        one_pixel = min(x2, GT_BOX[2]) == max(x1, GT_BOX[0]) or min(y2, GT_BOX[3]) == max(y1, GT_BOX[1])
        for name in ("think_format", "answer_format", "box_l1", "points"):
            assert up[name] == rob[name], (name, reply)
        if not one_pixel:
            assert up["box_iou"] == rob["box_iou"], reply
        vr_reply = (
            f'<think>The cup.</think><answer>[{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}], "point_2d": {pts[0]}}}]</answer>'
        )
        up, rob = terms(vr_reply, "upstream"), terms(vr_reply, "robust")
        assert (up["vr_format"], up["vr_accuracy"]) == (rob["vr_format"], rob["vr_accuracy"]), vr_reply


def test_env_step_reports_every_term_under_the_presets_rules():
    import gymnasium as gym

    import segzero_env  # noqa: F401

    reply = '\n<think>a</think><answer>{"bbox": [10, 10, 60, 60], "points_1": [20, 20], "points_2": [30, 30]}</answer>'
    got = {}
    for preset in ("seg-zero", "seg-zero-robust"):
        env = gym.make("ReasonSegShapes-v0", segmenter="box", reward=preset)
        env.reset(seed=0)
        _, reward, _, _, info = env.step(reply)
        assert list(info["reward_terms"]) == list(TERM_NAMES)
        assert reward == pytest.approx(sum(info["reward_terms"][k] for k in SZ))
        got[preset] = info["reward_terms"]["think_format"]
        env.close()
    assert got == {"seg-zero": 0.0, "seg-zero-robust": 1.0}


def test_non_repeat_counts_the_non_empty_sentences_that_repeat_an_earlier_one():
    import random

    from segzero_env.rewards.upstream import non_repeat

    def rule(reply):  # the published loop: strip each "."-separated piece, count repeats of non-empty ones
        seen, repeats = set(), 0
        for sentence in (piece.strip() for piece in reply.split(".")):
            if sentence:
                repeats += sentence in seen
                seen.add(sentence)
        return 0.0 if repeats >= 2 else 1.0

    rng = random.Random(2)
    replies = ["".join(rng.choice("ab. \n.") for _ in range(rng.randint(0, 30))) for _ in range(30000)]
    replies += REPLIES[:2000]
    assert [non_repeat(r) for r in replies] == [rule(r) for r in replies]
    assert 0 < sum(rule(r) == 0.0 for r in replies) < len(replies)


def test_env_docstring_describes_non_repeat_as_it_is():
    from segzero_env.envs.reasonseg_env import ReasonSegEnv

    doc = " ".join(ReasonSegEnv.__doc__.split())
    assert "upstream splits the WHOLE reply (tags and answer included) on ``.`` only" in doc
    assert "scores 0 when 2 or more sentences repeat an earlier one (one repeat is tolerated" in doc
    # ...and the claims hold.
    item = VR_GOOD
    assert vr(f"<think>A. B. B.</think><answer>{item}</answer>")[2] == 1.0
    assert vr(f"<think>A. B. B. B. C.</think><answer>{item}</answer>")[2] == 0.0
    assert vr(f"<think>A.</think><answer>{item}</answer> B. B. B.")[2] == 1.0  # "</think>... B" is another sentence
    assert vr(f"<think>A.</think><answer>{item}</answer> B. B. B. B.")[2] == 0.0
    assert vr(f"<think>A! A! A!</think><answer>{item}</answer>")[2] == 1.0
    assert vr("")[2] == 1.0 and vr("", "robust")[2] == 0.0
    assert vr(f"<think>A. B. B.</think><answer>{item}</answer>", "robust")[2] == 0.0


# --------------------------------------------------------------------------- fast paths give the general results


def _canonical_bodies(n, seed):
    import random

    rng = random.Random(seed)

    def num():
        roll = rng.random()
        if roll < 0.75:
            return str(rng.randint(-50, 900))
        if roll < 0.97:
            return f"{rng.uniform(-50, 900):.{rng.randint(1, 4)}f}"
        return rng.choice(["-0", "0", "0.0", "9999999", "12345678", "1e2", "01", "1.", ".5", "NaN", "true"])

    ws = ["", " ", "  ", "\n", "\t"] * 20 + ["\u00a0"]
    for _ in range(n):
        w = lambda: rng.choice(ws)  # noqa: E731
        nums = [num() for _ in range(8)]
        lists = [f"[{w()}{(w() + ',' + w()).join(nums[a:b])}{w()}]" for a, b in ((0, 4), (4, 6), (6, 8))]
        keys = ['"bbox"', '"points_1"', '"points_2"']
        pairs = [f"{k}{w()}:{w()}{v}" for k, v in zip(keys, lists, strict=True)]
        yield "{" + w() + f"{w()},{w()}".join(pairs) + w() + "}"


def _seg_zero_dict_bodies(n, seed):
    """Seg-Zero answers whose values are any JSON values, some with a key missing, renamed or added."""
    import random

    rng = random.Random(seed)
    values = ["250", "-3", "0", "-0", "412.5", "9999999", "12345678", "1e2", "-2.5E-3", "1e400", "-1e400"]
    values += ["9223372036854775808", "1" * 310, "true", "false", "null", "NaN", "Infinity", "-Infinity"]
    values += ['"300"', '""', '"a b"', '"\\u00e9"', '"}"', '"x,y"', "[1, 2]", "{}", '{"a": 1}', "01", "tru"]
    sizes = [(4, 2, 2)] * 8 + [(3, 2, 2), (4, 1, 2), (4, 2, 3), (0, 2, 2)]
    ws = ["", " ", "  ", "\n", "\t"]
    for _ in range(n):
        w = lambda: rng.choice(ws) if rng.random() < 0.3 else rng.choice(["", " "])  # noqa: E731
        lists = []
        for size in rng.choice(sizes):
            items = [rng.choice(values) if rng.random() < 0.3 else str(rng.randint(-20, 900)) for _ in range(size)]
            lists.append("[" + w() + (w() + "," + w()).join(items) + w() + "]" if rng.random() < 0.95 else "5")
        keys = ['"bbox"', '"points_1"', '"points_2"']
        roll = rng.random()
        if roll < 0.05:
            keys[rng.randrange(3)] = rng.choice(['"bbox_2d"', '"point_2d"', '"b"'])
        pairs = [f"{k}{w()}:{w()}{v}" for k, v in zip(keys, lists, strict=True)]
        if roll > 0.95:
            pairs.insert(rng.randrange(4), rng.choice(['"label": "cup"', '"bbox_2d": [1, 2, 3, 4]', '"bbox": [1]']))
        yield "{" + w() + f"{w()},{w()}".join(pairs) + "}"


def test_seg_zero_accuracy_on_exotic_box_values_equals_the_published_rule():
    import json
    import random

    rng = random.Random(11)
    exotic = [0, -1, 250, 410.0, 2.5, 1e300, -1e300, 10**30, True, False, [1], {"a": 1}, "NaN", "Infinity"]

    def value(center, p):  # near the ground truth's coordinate, or (with probability p) an exotic JSON value
        v = rng.choice(exotic) if rng.random() < p else center + rng.randint(-25, 25)
        return v if v in ("NaN", "Infinity") else json.dumps(v)

    scored = 0
    for _ in range(3000):
        box = ", ".join(value(c, 0.3) for c in GT_BOX)
        p1, p2 = (", ".join(value(c, 0.2) for c in point) for point in GT_POINTS)
        reply = f'<think>x</think><answer>{{"bbox": [{box}], "points_1": [{p1}], "points_2": [{p2}]}}</answer>'
        assert sz(reply) == baseline_sz(reply), reply
        scored += sum(sz(reply)[2:]) > 0
    assert scored > 100  # replies that earn accuracy terms, not only zeros


def test_reply_head_and_canonical_answer_read_what_the_canonical_reply_expression_matches():
    import random

    from segzero_env.parsing_fast import CANONICAL_REPLY, NOT_CANONICAL, canonical_answer, canonical_numbers, reply_head

    rng = random.Random(5)
    thinks = ["a", "a < b", "{x}", "", "two. two."]
    gaps = ["", " ", "\n", "\u2003", " x "]
    tails = ["</answer>", " </answer>", "</answer> ", "", "</answer></answer>", "\n</answer>"]
    read = not_canonical = 0
    for body in [*_canonical_bodies(3000, 4), *_seg_zero_dict_bodies(1000, 4)]:
        reply = (
            f"<think>{rng.choice(thinks)}</think>{rng.choice(gaps)}<answer>{rng.choice(gaps)}{body}{rng.choice(tails)}"
        )
        m = CANONICAL_REPLY.fullmatch(reply)
        head = reply_head(reply)
        got = canonical_answer(reply, head) if head >= 0 else None
        if got is NOT_CANONICAL:
            # The parser skips the expression on its answer text (from the head to the first closing
            # tag, stripped): it must not be canonical.
            end = reply.find("</answer>", head)
            assert m is None and (end < 0 or canonical_numbers(reply[head:end].strip()) is None), reply
            not_canonical += 1
        else:
            assert got == ((m.group(1), m.groups()[1:]) if m else None), reply
            read += got is not None
    assert 100 < read < 3000 and not_canonical > 100


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="possessive quantifiers need Python 3.11 (3.10 uses the plain form)"
)
def test_the_possessive_canonical_expression_matches_what_the_plain_one_matches():
    import random

    from segzero_env.parsing_fast import seg_zero_pattern

    plain, possessive = re.compile(seg_zero_pattern(False)), re.compile(seg_zero_pattern(True))
    rng = random.Random(8)
    texts = [*_canonical_bodies(3000, 8), *_seg_zero_dict_bodies(2000, 8)]
    texts += [t[: rng.randrange(len(t))] for t in texts[:2000]]  # cut anywhere
    texts += [t + rng.choice([" ", "}", "5", ", 1]", "\n</answer>"]) for t in texts[:2000]]
    texts += [t.replace(",", rng.choice([", ", ".", ",,", ""]), 1) for t in texts[:2000]]
    matched = 0
    for text in texts:
        for where in (0, min(1, len(text))):
            a, b = plain.match(text, where), possessive.match(text, where)
            assert (a and (a.span(), a.groups())) == (b and (b.span(), b.groups())), text
        a, b = plain.fullmatch(text), possessive.fullmatch(text)
        assert (a and a.groups()) == (b and b.groups()), text
        matched += a is not None
    assert 1000 < matched < len(texts) - 1000


def test_canonical_reader_accepts_only_what_json_loads_reads_and_gives_its_numbers():
    import json

    from segzero_env.parsing_fast import canonical_numbers, decode, floats

    matched = 0
    for body in [*_canonical_bodies(3000, 1), *_seg_zero_dict_bodies(1000, 1)]:
        got = canonical_numbers(body)
        try:
            expected = json.loads(body)
        except ValueError as err:
            assert got is None
            assert decode(body) == (None, ValueError, str(err))
            continue
        assert decode(body) == (expected, None, "")
        if got is not None:
            matched += 1
            assert list(expected) == ["bbox", "points_1", "points_2"]
            values = [*expected["bbox"], *expected["points_1"], *expected["points_2"]]
            assert all(type(v) in (int, float) for v in values) and len(values) == 8
            assert floats(got) == tuple(map(float, values)), body
    assert matched > 300


def test_the_rules_read_the_parsers_reading_and_score_as_without_it(monkeypatch):
    import dataclasses

    from segzero_env.rewards import upstream

    item = '{"bbox_2d": [10, 20, 30, 40], "point_2d": [15, 25]}'
    replies = [*REPLIES[:1500], *(f"<think>a</think><answer>{b}</answer>" for b in _seg_zero_dict_bodies(500, 6))]
    replies += ["<answer>[" + ", ".join([item] * 100) + "]</answer>", f"[{item}]", f"```json\n[{item}]\n```"]
    replies += [f"<answer>```json\n{GOOD}\n```</answer>", f"<think>a</think><answer>{GOOD[:-1]}</answer>"]
    box, points = tuple(map(float, GT_BOX)), tuple((float(x), float(y)) for x, y in GT_POINTS)

    def score(parsed_replies):
        return [
            compute_terms(RewardInput(r, p, box, points, None, None, 840), "upstream")
            for r, p in zip(replies, parsed_replies, strict=True)
        ]

    parsed = [parse_reply(r) for r in replies]
    carried = sum(p._json is not None for p in parsed)
    assert carried > 1000  # the general path hands over what it decoded
    for p in parsed:
        if p._json is not None:
            text, value, decoded = p._json
            assert (value, decoded) == (upstream.decode(text)[0], upstream.decode(text)[1] is None)
        if p._canonical is not None:
            assert p._canonical[1] == upstream.canonical_numbers(p._canonical[0])
    assert sum(p._canonical is not None for p in parsed) > 1000
    decoded = []
    real_decode = upstream.decode
    monkeypatch.setattr(upstream, "decode", lambda text: decoded.append(text) or real_decode(text))
    with_reading = score(parsed)
    assert all(p._json is None or p._json[0] not in decoded for p in parsed)  # never decoded again
    n_with = len(decoded)  # texts the parser did not decode (a reply without tags, say)
    plain = [dataclasses.replace(p) for p in parsed]  # equal replies, without the parser's reading
    assert plain == parsed and all(p._json is None and p._canonical is None for p in plain)
    decoded.clear()
    assert score(plain) == with_reading
    assert len(decoded) > 5 * n_with


def test_a_pickled_or_copied_parse_leaves_the_parsers_reading_behind():
    import copy
    import pickle

    items = ", ".join(['{"bbox_2d": [10, 20, 30, 40], "point_2d": [15, 25]}'] * 500)
    parsed = parse_reply(f"<think>a</think><answer>[{items}]</answer>")
    assert parsed._json is not None and len(parsed._json[0]) > 20_000
    for other in (pickle.loads(pickle.dumps(parsed)), copy.copy(parsed), copy.deepcopy(parsed)):
        assert other == parsed and other._json is None and other._canonical is None
    assert len(pickle.dumps(parsed)) < len(pickle.dumps(parsed.__dict__))


def test_direct_json_scan_returns_and_raises_what_json_loads_does():
    import json

    from segzero_env.parsing_fast import _json_loads

    texts = list(_canonical_bodies(500, 4)) + [b[:-3] for b in _canonical_bodies(200, 5)]
    texts += [" [1]", "[1] ", "[1] x", "", "x", "[1, 2", '"a"', "NaN", "-Infinity", "1e400", "[" * 100_000]
    texts += [r'{"a": "\u00e9\n"}', r'{"a": "\x"}', '{"a": 1, "a": 2}', "[1,]", "tru", "null"]
    texts += [" x", "\n", "\t[1", '{"a": tru}', "[1 2]", '"abc', "[" * 100_000 + "x"]
    for text in texts:
        try:
            expected = json.loads(text)
        except (ValueError, RecursionError) as err:
            with pytest.raises(type(err)) as got:
                _json_loads(text)
            assert str(got.value) == str(err)
            continue
        got = _json_loads(text)
        assert json.dumps(got) == json.dumps(expected), text


def test_parser_fast_path_gives_the_general_result(monkeypatch):
    import segzero_env.parsing as parsing

    replies = [
        f"<think>{t}</think>{w}<answer>{body}</answer>"
        for body in _canonical_bodies(1000, 2)
        for w in ("", " \n")
        for t in ("a", "a < b")
    ]
    replies += [
        f"<think>a</think><answer>{GOOD}</answer><answer>{GOOD}</answer>",
        f"<think>a</think><answer> {GOOD}\u2003</answer>",
        f"<think>a</think><answer>{GOOD}",
        f"<think>a</think><answer>{GOOD}</answer> b",
        f"<think>a</think> <answer> {GOOD} </answer></answer>",
        "<think>a</think><answer></answer>",
        "<think>a</think><answer>",
        "<think>a</think><answer></answer",
    ]
    fast = [parse_reply(r) for r in replies]
    monkeypatch.setattr(parsing, "canonical_numbers", lambda text: None)
    monkeypatch.setattr(parsing, "canonical_answer", lambda text, start: None)
    monkeypatch.setattr(parsing, "reply_head", lambda text: -1)
    assert [parse_reply(r) for r in replies] == fast


def test_upstream_fast_path_gives_the_general_result(monkeypatch):
    from segzero_env.rewards import upstream

    replies = [f"<think>a. b.</think><answer>{body}</answer>" for body in _canonical_bodies(1500, 3)]
    layouts = ["<think>a. b.</think><answer>{}</answer>", "\n<think>a</think> <answer> {} </answer>"]
    layouts += ["<think>{{x}}</think><answer>{}</answer>", "<answer>{}</answer><answer>[]</answer>", "{}"]
    layouts += ["<think>a</think><answer>{}}}</answer>", "<answer>```json\n{}\n```</answer>"]
    replies += [layouts[i % len(layouts)].format(body) for i, body in enumerate(_seg_zero_dict_bodies(3000, 3))]
    replies += REPLIES[:1500]
    replies += ['<think>a</think><answer>{}</answer>{"bbox": [250, 180, 410, 330]}', "<answer>{ }</answer>"]
    gts = [{}, {"gt_box": (250.5, 180, 410, 330)}, {"gt_box": (0, 0, 2**30, 5)}]
    fast = [terms(r, "upstream", **gt) for r in replies for gt in gts]
    monkeypatch.setattr(upstream, "canonical_seg_zero_terms", lambda *args: None)
    assert [terms(r, "upstream", **gt) for r in replies for gt in gts] == fast


def _literal_replies(seed: int, n: int = 3000) -> list[str]:
    """Replies whose answers are random mixes of Python and JSON literals, mostly single-quoted."""
    import random

    rng = random.Random(seed)
    atoms = [
        "'bbox'",
        "'points_1'",
        "'points_2'",
        "'a b'",
        "1",
        "-2",
        "3.5",
        "1e3",
        "01",
        "1_0",
        "True",
        "None",
        "true",
        "null",
        "NaN",
        "(1, 2)",
        "[1, 2]",
        "{}",
        "'x]'",
        "''",
        "'it''s'",
        "+1",
        ".5",
        "'\\n'",
        "Infinity",
        "'null'",
        "'x true'",
        "falsey",
        "'''a' null '''",
        "1 # null",
        "b'null'",
    ]

    def value(depth=0):
        roll = rng.random()
        if depth < 2 and roll < 0.3:
            return "[" + ", ".join(value(depth + 1) for _ in range(rng.randint(0, 4))) + rng.choice(["]", ",]"])
        if depth < 2 and roll < 0.5:
            items = [f"{rng.choice(atoms[:4])}: {value(depth + 1)}" for _ in range(rng.randint(0, 3))]
            return "{" + rng.choice([", ", ",", " ,\n"]).join(items) + "}"
        return rng.choice(atoms)

    replies = [f"<think>a</think><answer>{value()}</answer>" for _ in range(n)]
    return replies + [f"<think>a</think><answer>{GOOD.replace(chr(34), chr(39))}</answer>"]


def test_single_quoted_fast_path_gives_the_literal_result(monkeypatch):
    import segzero_env.parsing as parsing

    replies = _literal_replies(4)
    fast = [parse_reply(r) for r in replies]
    monkeypatch.setattr(parsing, "_JSON_ONLY_WORD", re.compile(r""))  # matches everywhere: the fast path is off
    monkeypatch.setattr(parsing, "_bare_json_word", lambda body: False)
    assert [parse_reply(r) for r in replies] == fast
    assert fast[-1].ok and not fast[-1].strict_json


def test_a_bare_json_word_fails_as_ast_would(monkeypatch):
    import ast

    import segzero_env.parsing as parsing

    replies = _literal_replies(5)
    bodies = [r[len("<think>a</think><answer>") : -len("</answer>")] for r in replies]
    bare = [b for b in bodies if parsing._bare_json_word(b)]
    assert len(bare) > 300  # the shortcut is exercised
    for body in bare:
        with pytest.raises(Exception):  # noqa: B017 - ast raises several types; each means "not a literal"
            ast.literal_eval(body)
    fast = [parse_reply(r) for r in replies]
    monkeypatch.setattr(parsing, "_bare_json_word", lambda body: False)  # every such body goes to ast again
    assert [parse_reply(r) for r in replies] == fast


def test_an_escaped_key_is_still_the_bbox_key():
    reply = (
        '<think>a</think><answer>{"bb\\u006fx": [250, 180, 410, 330], "points_1": [300, 250], '
        '"points_2": [360, 260]}</answer>'
    )
    assert sz(reply) == (1, 1, 1, 1, 1) == baseline_sz(reply)
    assert vr(reply) == baseline_vr(reply)


def test_fast_constructors_equal_the_dataclass_constructors():
    import dataclasses

    from segzero_env.types import AnswerSchema, FailureReason, ObjectAnswer, ParsedReply

    obj = ObjectAnswer((1.0, 2.0, 3.0, 4.0), ((1.0, 2.0),))
    assert ObjectAnswer.fast((1.0, 2.0, 3.0, 4.0), ((1.0, 2.0),)) == obj
    for fields in (
        {},
        {"failure": FailureReason.MISSING_KEY, "detail": "x", "think_format": True},
        {"objects": (obj,), "schema": AnswerSchema.SEG_ZERO, "strict_json": True, "n_answer_tags": 2},
    ):
        fast, slow = ParsedReply.fast(**fields), ParsedReply(**fields)
        assert fast == slow and repr(fast) == repr(slow) and hash(fast) == hash(slow)
        assert dataclasses.replace(fast, stop=True) == dataclasses.replace(slow, stop=True)
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.stop = True
    inp = RewardInput.fast(
        reply="r", parsed=ParsedReply(), gt_box=None, gt_points=None, pred_mask=None, gt_mask=None, image_size=840
    )
    assert inp == RewardInput("r", ParsedReply(), None, None, None, None, 840)
    with pytest.raises(TypeError, match="no field"):
        ParsedReply.fast(stopp=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'parsedd'"):
        RewardInput.fast(reply="r", parsedd=None)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'image_size'"):
        RewardInput.fast(reply="r", parsed=ParsedReply(), gt_box=None, gt_points=None, pred_mask=None, gt_mask=None)
    every = {f.name: f.name for f in dataclasses.fields(RewardInput)}
    assert RewardInput.fast(**every) == RewardInput(**every)  # every field, each in its place
    assert ObjectAnswer.fast((1.0, 2.0, 3.0, 4.0)).negative_points == ()
    seg_zero = {"objects": (obj,), "schema": AnswerSchema.SEG_ZERO, "strict_json": True, "think_format": True}
    fields = {**seg_zero, "n_answer_tags": 2, "answer_text": "{}", "box_inverted": True, "detail": "d"}
    fast = ParsedReply.answered((obj,), AnswerSchema.SEG_ZERO, True, True, 2, "{}", True, "d")
    assert fast == ParsedReply(**fields) and repr(fast) == repr(ParsedReply(**fields))
    checks = ((True, False),)
    listed = ParsedReply.answered((obj,), AnswerSchema.QWEN_GROUNDING, False, False, 0, None, False, "", checks)
    assert listed == ParsedReply(objects=(obj,), schema=AnswerSchema.QWEN_GROUNDING, item_checks=checks)
    failed = ParsedReply.failed(FailureReason.NON_FINITE, "d", True, True, 3, "{}", checks)
    assert failed == ParsedReply(
        failure=FailureReason.NON_FINITE,
        detail="d",
        think_format=True,
        strict_json=True,
        n_answer_tags=3,
        answer_text="{}",
        item_checks=checks,
    )
    assert repr(ParsedReply.failed(FailureReason.EMPTY, "e")) == repr(
        ParsedReply(failure=FailureReason.EMPTY, detail="e")
    )


def test_literal_floats_equal_float():
    from segzero_env.parsing_fast import floats

    literals = ("0", "-0", "1", "-256", "-257", "4095", "4096", "12.5", "-0.0", "1234567")
    assert all(
        math.copysign(1, a) == math.copysign(1, b) and a == b
        for a, b in zip(floats(literals), map(float, literals), strict=True)
    )
    table = tuple(str(i) for i in range(-1500, 9000))
    assert floats(table) == tuple(map(float, table))


def test_generated_replies_agree_with_the_published_rules_on_two_ground_truth_objects():
    second = ((262, 190, 400, 320), (330, 255))
    gts = (
        ObjectAnswer(tuple(map(float, GT_BOX)), (tuple(map(float, GT_POINTS[0])),)),
        ObjectAnswer(tuple(map(float, second[0])), (tuple(map(float, second[1])),)),
    )
    solution = baseline.vision_reasoner_solution([(GT_BOX, GT_POINTS[0]), second])
    disagreements = []
    for reply in REPLIES[1::2]:
        ours = terms(reply, "upstream", gt_objects=gts)["vr_accuracy"]
        ref = baseline.vr_accuracy(reply, solution)
        if ours != ref:
            disagreements.append((ours, ref, reply))
    assert disagreements == []


def test_vr_ground_truth_is_remembered_only_for_the_same_tuples():
    from segzero_env.rewards import upstream

    box, points = (1.0, 2.0, 30.0, 40.0), ((5.0, 6.0),)
    first = upstream.vr_ground_truth(box, points, None)
    assert first == (((1, 2, 30, 40),), ((5, 6),), True)
    assert upstream.vr_ground_truth(box, points, None) is first
    assert upstream.vr_ground_truth((1.0, 2.0, 30.0, 41.0), points, None)[0] == ((1, 2, 30, 41),)
    mutable = [[5.0, 6.0]]
    assert upstream.vr_ground_truth(box, mutable, None)[1] == ((5, 6),)
    mutable[0][0] = 7.5  # a list can change between calls: it is read again
    assert upstream.vr_ground_truth(box, mutable, None)[1] == ((7.5, 6),)
    assert upstream.vr_ground_truth(box, ((5.0,),), None) is None  # a point without 2 values: the term is 0
    assert upstream.vr_ground_truth(None, None, None) is None
    objects = tuple(ObjectAnswer((0.0, 0.0, 9.0, 9.0), ((float(i), 1.0),)) for i in range(130))
    boxes, object_points, small = upstream.vr_ground_truth(box, points, objects)
    assert len(boxes) == upstream.VR_MAX_OBJECTS and object_points[3] == (3, 1) and small
    assert not upstream.vr_ground_truth((1.0, 2.0, 2.0**21, 40.0), points, None)[2]


def _coordinate(rng, center):
    """A coordinate near ``center`` or a large one on either side of the scorers' limits."""
    kind = rng.random()
    if kind < 0.3:
        return center + rng.randint(-30, 30)
    if kind < 0.5:
        return rng.choice([-1, 1]) * rng.randint(2**24, 2**30)
    if kind < 0.6:
        # Beyond int64 (2**63, 10**20, 2**64 + 1): numpy's array type for them depends on its version.
        return rng.choice(
            [2**24 + 1, 2**30, -(2**30), 2**30 + 1, 2**31 + 7, -(2**62), 2**63 - 1, 2**63, -(2**63), 10**20, 2**64 + 1]
        )
    if kind < 0.8:
        return round(center + rng.uniform(-30, 30), rng.choice([0, 1, 3]))
    if kind < 0.9:
        return float(rng.randint(-(2**30), 2**30)) + rng.choice([0.0, 0.5])
    return rng.choice([True, False])


def test_vision_reasoner_accuracy_on_large_integers_equals_the_published_rule():
    import json
    import random

    rng = random.Random(7)
    gts = ((GT_BOX, GT_POINTS[0]), ((10, 20, 200, 220), (50, 60)))
    disagreements = []
    for i in range(1500):
        truth = gts[: 1 + i % 2]
        objects = [
            {"bbox_2d": [_coordinate(rng, c) for c in box], "point_2d": [_coordinate(rng, c) for c in point]}
            for box, point in (rng.choice(truth) for _ in range(rng.choice([1, 1, 2, 3])))
        ]
        if i % 3 == 0:  # a wide box: integer areas beyond 2**53, float64 rounds them
            objects[0]["bbox_2d"] = [-rng.randint(2**28, 2**30), 180, rng.randint(2**28, 2**30) + 0.5 * (i % 2), 330]
        reply = "<think>x</think><answer>" + json.dumps(objects) + "</answer>"
        gt_objects = tuple(ObjectAnswer(tuple(map(float, b)), (tuple(map(float, p)),)) for b, p in truth)
        ours = terms(reply, "upstream", gt_objects=gt_objects)["vr_accuracy"]
        ref = baseline.vr_accuracy(reply, baseline.vision_reasoner_solution(list(truth)))
        if ours != ref:
            disagreements.append((ours, ref, reply))
    assert disagreements == []


def test_vision_reasoner_terms_on_exotic_values_equal_the_published_rule():
    import json
    import random

    rng = random.Random(13)
    exotic = [float("nan"), float("inf"), -float("inf"), 1e300, -1e300, True, False, None, "12", [1], 0.5]

    def value(center):  # near the ground truth's coordinate, or now and then an exotic JSON value
        return rng.choice(exotic) if rng.random() < 0.15 else center + rng.randint(-12, 12)

    scored = 0
    for _ in range(3000):
        objects = [
            {"bbox_2d": [value(c) for c in GT_BOX], "point_2d": [value(c) for c in GT_POINTS[0]]}
            for _ in range(rng.choice([1, 1, 2]))
        ]
        reply = "<think>x</think><answer>" + json.dumps(objects) + "</answer>"
        assert vr(reply) == baseline_vr(reply), reply
        scored += vr(reply)[1] > 0
    assert scored > 300  # replies that earn accuracy, not only zeros


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_fast_int_limit_keeps_numpy_integer_arithmetic_exact(dtype):
    """Within the limit (ground truth included) numpy's integers of that type never wrap; beyond it, int32 does."""
    import numpy as np

    from segzero_env.rewards.upstream import fast_int_limit

    def accuracy_quantities(box, point, gt_box, gt_point, ints):
        (x1, y1, x2, y2), (g1, h1, g2, h2) = ints(box), ints(gt_box)
        inter = (min(x2, g2) - max(x1, g1) + 1) * (min(y2, h2) - max(y1, h1) + 1)
        union = (x2 - x1 + 1) * (y2 - y1 + 1) + (g2 - g1 + 1) * (h2 - h1 + 1) - inter
        squared = sum((a - c) * (a - c) for a, c in zip(ints(point), ints(gt_point), strict=True))
        return [int(v) for v in (inter, union, squared)]

    def wraps(limit):
        g = min(limit, 2**20)
        cases = [
            ([-limit, -limit, limit, limit], [limit, -limit], [-g, -g, g, g], [-g, g]),
            ([limit, limit, -limit, -limit], [-limit, limit], [g, g, -g, -g], [g, -g]),
        ]
        as_numpy = lambda values: list(np.array(values, dtype=dtype))  # noqa: E731 - numpy scalars of that type
        return any(
            accuracy_quantities(*case, as_numpy) != accuracy_quantities(*case, lambda values: values) for case in cases
        )

    with np.errstate(all="ignore"):
        limit = fast_int_limit(dtype)
        assert not wraps(limit)
        if dtype == "int32":
            assert wraps(4 * limit)  # the bound is within a factor of 4 of where int32 wraps

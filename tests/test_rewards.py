import collections
import itertools
import random
import re

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

from segzero_env.answers import format_reply
from segzero_env.parsing import parse_reply
from segzero_env.rewards import (
    PRESETS,
    TERM_NAMES,
    TERM_RANGES,
    RewardInput,
    compute_terms,
    make_preset,
    unavailable_terms,
)
from segzero_env.rewards.terms import _SENTENCE_SPLIT, SENTENCE_END, TERM_FUNCTIONS, _common_terms, vr_accuracy
from segzero_env.types import AnswerSchema, ObjectAnswer


def _inp(reply, *, gt_box=(0, 0, 99, 99), gt_points=((40, 50), (60, 50)), pred_mask=None, gt_mask=None, **kw):
    return RewardInput(reply, parse_reply(reply), gt_box, gt_points, pred_mask, gt_mask, 840, **kw)


def _scores(terms):
    return {name: make_preset(name).combine(terms) for name in ("mask-iou", "seg-zero", "vision-reasoner")}


def test_perfect_seg_zero_reply():
    gt = np.zeros((60, 60), np.uint8)
    gt[10:51, 10:51] = 1
    reply = format_reply(box=(10, 10, 50, 50), points=[(20, 20), (40, 40)], think="The red one. It is big.")
    terms = compute_terms(
        _inp(reply, gt_box=(10, 10, 50, 50), gt_points=((20, 20), (40, 40)), pred_mask=gt == 1, gt_mask=gt)
    )
    assert list(terms) == list(TERM_NAMES)
    assert terms == {
        "think_format": 1.0,
        "answer_format": 1.0,
        "box_iou": 1.0,
        "box_l1": 1.0,
        "points": 1.0,
        "vr_format": 1.0,
        "vr_accuracy": 3.0,
        "non_repeat": 1.0,
        "mask_iou": 1.0,
    }
    assert _scores(terms) == {"mask-iou": 3.0, "seg-zero": 5.0, "vision-reasoner": 5.0}


def test_partial_seg_zero_reply_hand_computed():
    # Box (0,0,99,49) vs GT (0,0,99,99): inclusive IoU = 100*50 / (100*100) = 0.5, not > 0.5;
    # L1 = 50/4 = 12.5, not < 10. Points inside the box, best-order mean distance (2+4)/2 = 3 < 100.
    reply = (
        '<think>Look. Look.</think><answer>{"bbox": [0, 0, 99, 49], "points_1": [10, 10], '
        '"points_2": [20, 40]}</answer>'
    )
    gt = np.zeros((10, 10), np.uint8)
    gt[0:4, 0:5] = 1  # 20 target pixels
    gt[9, :] = 255
    pred = np.zeros((10, 10), bool)
    pred[0:2, 0:5] = True  # 10 on target
    pred[5, 0:5] = True  # 5 on background
    pred[9, 0:3] = True  # 3 on ignore: dropped
    terms = compute_terms(_inp(reply, gt_points=((12, 10), (20, 44)), pred_mask=pred, gt_mask=gt))
    # mask IoU = 10 / (15 + 20 - 10) = 0.4; vr_accuracy: only the point counts (|(10,10)-(12,10)| = 2 < 30).
    assert terms == {
        "think_format": 1.0,
        "answer_format": 1.0,
        "box_iou": 0.0,
        "box_l1": 0.0,
        "points": 1.0,
        "vr_format": 1.0,
        "vr_accuracy": 1.0,
        "non_repeat": 0.0,
        "mask_iou": pytest.approx(0.4),
    }
    assert _scores(terms) == {"mask-iou": pytest.approx(2.4), "seg-zero": 3.0, "vision-reasoner": 2.0}


def test_points_term_rules():
    base = '<answer>{{"bbox": [0, 0, 99, 99], "points_1": {p1}, "points_2": {p2}}}</answer>'
    # One point outside its own box: 0, even though it is near the GT.
    assert compute_terms(_inp(base.format(p1=[40, 50], p2=[100, 50])))["points"] == 0.0
    # Both inside but far: mean distance (|(0,0)-(40,50)| + |(99,99)-(60,50)|) / 2 > 100? 64.0 + 62.6 -> no, close.
    far = compute_terms(_inp(base.format(p1=[0, 99], p2=[99, 99]), gt_points=((0, 0), (10, 0))))
    assert far["points"] == 0.0  # (99 + 140) / 2 > 100
    assert compute_terms(_inp(base.format(p1=[60, 50], p2=[40, 50])))["points"] == 1.0  # swapped order is fine
    assert compute_terms(_inp(base.format(p1=[60, 50], p2=[40, 50]), gt_points=None))["points"] == 0.0


def test_vision_reasoner_reply_hand_computed():
    reply = (
        '<think>Two cups. The left one.</think><answer>[{"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}, '
        '{"bbox_2d": [200, 200, 300, 300], "point_2d": [250, 250]}]</answer>'
    )
    gt = np.zeros((8, 8), np.uint8)
    gt[2:4, 2:4] = 1
    terms = compute_terms(_inp(reply, gt_mask=gt, expected_schema=AnswerSchema.VISION_REASONER))
    # vr_format = 1 + (2 + 2) / 2; vr_accuracy: best match scores 3 (point 10 px away), / max(2, 1).
    assert terms == {
        "think_format": 1.0,
        "answer_format": 1.0,
        "box_iou": 1.0,
        "box_l1": 1.0,
        "points": 0.0,
        "vr_format": 3.0,
        "vr_accuracy": 1.5,
        "non_repeat": 1.0,
        "mask_iou": 0.0,
    }
    assert _scores(terms) == {"mask-iou": 2.0, "seg-zero": 4.0, "vision-reasoner": 5.5}
    # The same reply under the Seg-Zero prompt does not have the expected schema.
    assert compute_terms(_inp(reply))["answer_format"] == 0.0


def test_vr_format_partial_credit_on_a_failed_list():
    reply = (
        '<think>a</think><answer>[{"bbox_2d": [0, 0, 9, 9], "point_2d": [1, 1]}, {"bbox_2d": [0, 0, 9]}, '
        '{"bbox_2d": [0, 0, 9, 9], "point_2d": [1, "x"]}]</answer>'
    )
    terms = compute_terms(_inp(reply))
    assert terms["vr_format"] == pytest.approx(1 + (2 + 0 + 1) / 3)
    assert terms["answer_format"] == 0.0 and terms["vr_accuracy"] == 0.0


def test_vr_accuracy_hungarian_hand_computed():
    gts = (ObjectAnswer((0, 0, 99, 99), ((50, 50),)), ObjectAnswer((200, 200, 299, 299), ((250, 250),)))
    preds = [ObjectAnswer((200, 200, 299, 299), ((250, 250),)), ObjectAnswer((0, 0, 99, 119), ((90, 90),))]
    reply = format_reply(preds, schema="vision-reasoner")
    # P1-G2 scores 3; P2-G1: IoU 100*100/(100*120) > 0.5, L1 20/4 = 5 < 10, point 56.6 px away -> 2.
    assert vr_accuracy(_inp(reply, gt_objects=gts)) == pytest.approx((3 + 2) / 2)


def test_vr_accuracy_matches_exhaustive_search():
    from segzero_env.rewards.terms import _match_score

    rng = np.random.default_rng(3)

    def jitter(obj, scale):
        box = tuple(float(v + rng.integers(-scale, scale + 1)) for v in obj.box)
        return ObjectAnswer(box, ((obj.points[0][0] + rng.integers(-40, 41), obj.points[0][1]),))

    for _ in range(30):
        gts = []
        for _ in range(rng.integers(1, 5)):
            x, y = (float(v) for v in rng.integers(0, 200, 2))
            w, h = (float(v) for v in rng.integers(20, 60, 2))
            gts.append(ObjectAnswer((x, y, x + w, y + h), ((x + w / 2, y + h / 2),)))
        preds = [jitter(gts[rng.integers(len(gts))], int(rng.integers(0, 25))) for _ in range(rng.integers(1, 5))]
        parsed = parse_reply(format_reply(preds, schema="vision-reasoner"))
        got = vr_accuracy(_inp(format_reply(preds, schema="vision-reasoner"), gt_objects=tuple(gts)))
        n, m = len(parsed.objects), len(gts)
        pairs = (
            (list(zip(parsed.objects, perm, strict=False)) for perm in itertools.permutations(gts, n))
            if n <= m
            else (list(zip(perm, gts, strict=False)) for perm in itertools.permutations(parsed.objects, m))
        )
        best = max(sum(_match_score(p, g) for p, g in pairing) for pairing in pairs)
        assert got == pytest.approx(best / max(n, m))


def test_unusable_reply_scores_zero_but_mask_rules_hold():
    gt = np.zeros((5, 5), np.uint8)
    gt[1:3, 1:3] = 1
    terms = compute_terms(_inp("hello", gt_mask=gt))
    assert terms == {
        "think_format": 0.0,
        "answer_format": 0.0,
        "box_iou": 0.0,
        "box_l1": 0.0,
        "points": 0.0,
        "vr_format": 0.0,
        "vr_accuracy": 0.0,
        "non_repeat": 1.0,
        "mask_iou": 0.0,
    }
    # LISA: nothing predicted on an empty target is a perfect score.
    assert compute_terms(_inp("hello", gt_mask=np.zeros((5, 5), np.uint8)))["mask_iou"] == 1.0
    assert compute_terms(_inp(""))["non_repeat"] == 0.0
    assert compute_terms(_inp("x" * 300_000))["non_repeat"] == 0.0


def test_non_repeat_ignores_numbers_and_uses_the_think_block():
    reply = (
        "<think>The cup is red. It has 2.5 handles! Is it the cup? Yes.</think>"
        '<answer>{"bbox": [1.5, 1.5, 9.5, 9.5], "points_1": [2.5, 2.5], "points_2": [3.5, 3.5]}</answer>'
    )
    assert compute_terms(_inp(reply))["non_repeat"] == 1.0
    assert compute_terms(_inp("<think>Red.\nRed.</think><answer>[]</answer>"))["non_repeat"] == 0.0
    # Repetition outside the think block does not count when there is one.
    assert compute_terms(_inp("Same. Same. <think>Once.</think>"))["non_repeat"] == 1.0


def test_unavailable_terms():
    full = _inp("x", gt_mask=np.zeros((2, 2), np.uint8))
    assert unavailable_terms(full) == {}
    bare = _inp("x", gt_box=None, gt_points=None)
    assert set(unavailable_terms(bare)) == {"mask_iou", "box_iou", "box_l1", "vr_accuracy", "points"}
    assert all(v == 0.0 for k, v in compute_terms(bare).items() if k in unavailable_terms(bare))


def test_presets_ranges_and_weights():
    assert make_preset().name == "mask-iou"
    assert {n: p.reward_range for n, p in PRESETS.items()} == {
        "mask-iou": (0.0, 3.0),
        "seg-zero": (0.0, 5.0),
        "seg-zero-robust": (0.0, 5.0),
        "vision-reasoner": (0.0, 7.0),
        "vision-reasoner-robust": (0.0, 7.0),
    }
    for preset in PRESETS.values():
        assert set(preset.weights) == set(TERM_NAMES) and preset.description
    custom = make_preset("seg-zero", {"think_format": -2, "mask_iou": 0.5})
    assert custom.reward_range == (-2.0, 4.5)
    assert custom.weights["think_format"] == -2.0 and PRESETS["seg-zero"].weights["think_format"] == 1.0
    terms = dict.fromkeys(TERM_NAMES, 1.0)
    assert custom.combine(terms) == pytest.approx(-2 + 4 + 0.5)
    off = make_preset("mask-iou", {"mask_iou": 0})
    assert off.reward_range == (0.0, 2.0) and off.combine({"think_format": 1, "answer_format": 0}) == 1.0
    with pytest.raises(ValueError, match="valid presets: mask-iou, seg-zero, seg-zero-robust, vision-reasoner"):
        make_preset("lisa")
    with pytest.raises(ValueError, match="valid terms: think_format"):
        make_preset("mask-iou", {"iou": 1.0})
    with pytest.raises(ValueError, match="finite"):
        make_preset("mask-iou", {"mask_iou": float("inf")})
    with pytest.raises(KeyError):
        PRESETS["mask-iou"].combine({"think_format": 1.0})
    assert make_preset(custom, {"points": 3}).weights["points"] == 3.0


def test_term_ranges_cover_every_term():
    assert set(TERM_RANGES) == set(TERM_NAMES) and all(lo < hi for lo, hi in TERM_RANGES.values())


def test_no_target_samples_reward_the_empty_answer_under_the_robust_rules_only():
    empty_gt = np.zeros((20, 20), np.uint8)
    none = format_reply([], schema="vision-reasoner", think="Nothing fits. There is no such shape.")
    some = format_reply(box=(1, 1, 9, 9), points=[(3, 3), (5, 5)], think="The red one.")
    some_mask = np.zeros((20, 20), bool)
    some_mask[2:6, 2:6] = True
    accuracy = ("box_iou", "box_l1", "points", "vr_accuracy", "mask_iou")
    kwargs = {"gt_box": None, "gt_points": None, "gt_mask": empty_gt, "no_target": True}
    right = compute_terms(_inp(none, **kwargs))
    assert {k: right[k] for k in accuracy} == {
        "box_iou": 1.0,
        "box_l1": 1.0,
        "points": 1.0,
        "vr_accuracy": 3.0,
        "mask_iou": 1.0,
    }
    assert right["answer_format"] == 1.0 and right["vr_format"] == 3.0
    assert make_preset("seg-zero-robust").combine(right) == 5.0 and make_preset("mask-iou").combine(right) == 3.0
    wrong = compute_terms(_inp(some, pred_mask=some_mask, **kwargs))
    assert all(wrong[k] == 0.0 for k in accuracy)
    # On a sample with a target, the empty answer is well formed but scores no accuracy.
    target = np.zeros((20, 20), np.uint8)
    target[2:6, 2:6] = 1
    missed = compute_terms(_inp(none, gt_box=(2, 2, 5, 5), gt_points=((3, 3), (4, 4)), gt_mask=target))
    assert missed["answer_format"] == 1.0 and all(missed[k] == 0.0 for k in accuracy)
    # The upstream rules know no empty answer: unchanged, the "[]" reply has no Seg-Zero dict.
    upstream = compute_terms(_inp(none, **kwargs), "upstream")
    assert upstream["answer_format"] == upstream["box_iou"] == upstream["points"] == 0.0
    assert upstream["mask_iou"] == 1.0  # LISA: empty on empty


def test_sentence_split_splits_where_the_rule_says():
    # The fast expression must split every text exactly where SENTENCE_END matches.
    rule = re.compile(SENTENCE_END)
    rng = random.Random(0)
    alphabet = ".!?\n \t\r\x0b\x0c\u2003\u2028\x1c\x85ab"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(30_000)]
    texts += ["Red. Red.", "a!? b\n\nc.", "end.", "..\n. x", "a.b. c"]
    assert [_SENTENCE_SPLIT.split(t) for t in texts] == [rule.split(t) for t in texts]


def test_robust_box_rules_at_the_iou_threshold():
    # IoU exactly 0.5 (inclusive areas 50 of 100) is not above 0.5; L1 and the points count.
    reply = format_reply(box=(0, 0, 4, 9), points=[(1, 1), (2, 2)], think="The left half.")
    inp = _inp(reply, gt_box=(0, 0, 9, 9), gt_points=((1, 1), (2, 2)))
    expected = {"box_iou": 0.0, "box_l1": 1.0, "points": 1.0, "vr_accuracy": 2.0}
    terms = compute_terms(inp)  # the one pass
    assert {k: terms[k] for k in expected} == expected
    assert {k: TERM_FUNCTIONS[k](inp) for k in expected} == expected  # the term functions


def test_common_terms_equal_the_term_functions():
    """The common cases' path gives every term exactly as the table's functions do, on every kind of reply."""
    baseline = load_benchmark("upstream_baseline")
    replies = baseline.generate_replies(3_000, seed=7)
    replies += [
        format_reply(box=(10, 10, 50, 50), points=[(20, 20), (40, 40)], think="The red one. It is big."),
        format_reply([ObjectAnswer((10, 10, 50, 50), ((20, 20),))], schema=AnswerSchema.VISION_REASONER),
        '<answer>[{"bbox_2d": [10, 10, 50, 50]}]</answer>',  # no point
        '<answer>{"bbox": [10, 10, 50, 50], "points_1": [20, 20], "points_2": [40, 40], '
        '"positive_points": [[30, 30]]}</answer>',  # three points
        "<think>Red.\nRed.</think>"
        + '<answer>{"bbox": [1e300, 0, 2e300, 1], "points_1": [0, 0], "points_2": [1, 1]}</answer>',
        # the mean point distance is exactly 100 against the first ground truth below: not below 100
        format_reply(box=(250, 180, 470, 330), points=[(400, 250), (460, 260)], think="Far."),
    ]
    gts = [
        {"gt_box": (250.0, 180.0, 410.0, 330.0), "gt_points": ((300.0, 250.0), (360.0, 260.0))},
        {"gt_box": (250, 180, 410, 330), "gt_points": ((300, 250), (360, 260))},  # integers
        {"gt_box": (10, 10, 50, 50), "gt_points": [[20, 20], [40, 40]]},  # lists
        {"gt_box": (250.5, 180.0, 410.0, 330.0), "gt_points": ((300.0, 250.0),)},  # one point
        {"gt_box": (250.0, 180.0, 410.0, 330.0), "gt_points": ((300.0, 250.0), (1.0, 2.0), (360.0, 260.0))},
        {"gt_box": (250.0, 180.0, 410.0, 330.0), "gt_points": None},
        {"gt_box": (0.0, 0.0, float("nan"), 5.0), "gt_points": ((300.0, float("inf")), (360.0, 260.0))},
        {"gt_box": None, "gt_points": None},
        {"gt_box": (250.0, 180.0, 410.0, 330.0), "gt_points": ((300.0, 250.0), (360.0, 260.0)), "no_target": True},
        {
            "gt_box": (250.0, 180.0, 410.0, 330.0),
            "gt_points": ((300.0, 250.0), (360.0, 260.0)),
            "gt_objects": (ObjectAnswer((250.0, 180.0, 410.0, 330.0), ((300.0, 250.0),)),),
        },
        {  # two ground-truth objects: the one prediction is matched against both
            "gt_box": (250.0, 180.0, 410.0, 330.0),
            "gt_points": ((300.0, 250.0), (360.0, 260.0)),
            "gt_objects": (
                ObjectAnswer((0.0, 0.0, 40.0, 40.0), ((20.0, 20.0),)),
                ObjectAnswer((250.0, 180.0, 410.0, 330.0), ((300.0, 250.0),)),
            ),
        },
        {  # a mask: mask_iou counted from the masks
            "gt_box": (250.0, 180.0, 410.0, 330.0),
            "gt_points": ((300.0, 250.0), (360.0, 260.0)),
            "gt_mask": np.ones((8, 8), np.uint8),
            "pred_mask": np.eye(8, dtype=bool),
        },
    ]
    taken = collections.Counter()
    for reply in replies:
        parsed = parse_reply(reply)
        for gt in gts:
            inp = RewardInput(reply, parsed, **{"pred_mask": None, "gt_mask": None, **gt}, image_size=840)
            fast = _common_terms(inp)
            taken[(fast is not None, len(parsed.objects))] += 1
            expected = {name: fn(inp) for name, fn in TERM_FUNCTIONS.items()}
            assert repr(compute_terms(inp)) == repr(expected), (reply, gt)
            assert fast is None or repr(fast) == repr(expected), (reply, gt)
    # Both cases are taken, and the path is refused where it does not apply (no-target samples, several
    # ground-truth objects, no ground truth, several predicted objects).
    assert taken[(True, 0)] > 20_000 and taken[(True, 1)] > 5_000, taken
    assert taken[(False, 0)] > 1_000 and taken[(False, 1)] > 500 and taken[(False, 3)] > 0, taken

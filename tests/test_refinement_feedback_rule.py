"""The feedback-rule benchmark: what a second turn can gain from the mask alone."""

from __future__ import annotations

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

rule = load_benchmark("refinement_feedback_rule")


def test_mask_box_grows_and_clips():
    mask = np.zeros((10, 10), np.uint8)
    mask[0:3, 7:10] = 1
    assert rule.mask_box(mask, 2, 10) == [5, 0, 9, 4]
    assert rule.mask_box(np.zeros((4, 4), np.uint8), 2, 4) is None


def test_box_feedback_holds_nothing_and_grabcut_feedback_helps():
    box = rule.run_rule("box", jitter=0.25, margin=0, samples=30)
    grabcut = rule.run_rule("grabcut", jitter=0.25, margin=4, samples=30)
    # the box segmenter's mask is the box: restating its bounding box changes only the rounding
    assert abs(box["gain"]) < 0.02 and box["miou_turn_1"] > 0.2
    # grabcut's mask follows the object, so its grown bounding box is a better box than turn 1's
    assert grabcut["gain"] > 0.04


def test_a_wrong_object_is_invisible_to_mask_feedback_and_plain_in_iou_feedback():
    r = rule.run_choice_rule("grabcut", samples=6, level=1)
    # the other object's mask is a good mask of the wrong object: IoU 0 with the target
    assert r["miou_always_other"] < 0.05 and r["miou_always_target"] > 0.6
    assert abs(r["miou_turn_1"] - (r["miou_always_target"] + r["miou_always_other"]) / 2) < 1e-3
    # restating the mask's box cannot undo the choice; acting on the IoU can
    assert r["miou_turn_2_mask_rule"] < r["miou_turn_1"] + 0.05
    assert r["miou_turn_2_iou_rule"] > r["miou_turn_1"] + 0.25


def test_the_choice_rule_needs_two_objects():
    with pytest.raises(ValueError, match="--level 1"):
        rule.run_choice_rule("box", samples=1, level=0)

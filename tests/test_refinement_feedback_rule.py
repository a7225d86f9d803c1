"""The feedback-rule benchmark: what a second turn can gain from the mask alone."""

from __future__ import annotations

import numpy as np
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

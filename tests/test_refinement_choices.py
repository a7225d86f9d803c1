"""benchmarks/refinement_choices.py: sorting 2-turn episodes by turn-1 pick and turn-2 action (issue 18)."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark

from segzero_env.answers import format_refinement, format_reply

rc = load_benchmark("refinement_choices")

TARGET = [5, 5, 20, 20]
OTHER = [30, 30, 50, 50]


def _reply(box):
    return format_reply(box=box, points=[[box[0] + 1, box[1] + 1], [box[2] - 1, box[3] - 1]])


def test_episodes_are_sorted_by_pick_and_action():
    boxes = [(TARGET, [OTHER])] * 6
    first = [_reply(TARGET), _reply(TARGET), _reply(OTHER), _reply(OTHER), _reply([0, 40, 4, 44]), _reply(OTHER)]
    second = [
        format_refinement(box=TARGET),  # keeps the target
        format_refinement(box=OTHER),  # leaves the target
        format_refinement(box=TARGET),  # corrects a wrong pick
        "",  # no turn-2 reply: the box stays
        format_refinement(box=TARGET),  # turn 1 was neither object
        format_refinement(box=[0, 0, 55, 55]),  # the whole image
    ]
    counts = rc.classify(first, second, boxes, 56)
    assert counts == {
        ("target", "keep"): 1,
        ("target", "switch"): 1,
        ("other", "switch"): 1,
        ("other", "keep"): 1,
        ("neither", "other"): 1,
        ("other", "other"): 1,
    }
    # a slightly moved box still counts as the same object (box IoU >= 0.5)
    assert rc.pick_of([6, 5, 21, 20], TARGET, [OTHER], 56) == "target"
    assert rc.pick_of([0, 0, 55, 55], TARGET, [OTHER], 56) == "whole"  # covers both objects
    assert rc.pick_of([0, 30, 10, 55], TARGET, [OTHER], 56) == "neither"


def test_table_gives_shares_per_pick():
    counts = rc.classify([_reply(OTHER)] * 2, [format_refinement(box=TARGET), ""], [(TARGET, [OTHER])] * 2, 56)
    text = rc.table({"p": {"counts": counts, "iou_turn_1": 0.1, "iou_turn_2": 0.5}})
    assert "| p | 0.100 | 0.500 | 0, - / - / - | 2, 0.50 / 0.50 / 0.00 | 0, - / - / - | 0, - / - / - |" in text


def test_a_saved_policy_plays_and_is_counted(tmp_path, capsys):
    import torch
    from grpo_refinement import _preset_argv
    from segzero_agents.grpo import policy_from_args
    from segzero_agents.presets import parse_args

    opts = load_benchmark("grpo_refinement").build_parser().parse_args(["--level", "1"])
    bundle = policy_from_args(parse_args(_preset_argv(0, opts)), torch.device("cpu"))
    bundle.model.save_pretrained(tmp_path)
    bundle.processor.save_pretrained(tmp_path)
    rc.main(["--policies", f"random={tmp_path}", "--samples", "3", "--segmenter", "box"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(out["random"]["counts"].values()) == 3
    assert 0.0 <= out["random"]["iou_turn_1"] <= 1.0
    with pytest.raises(SystemExit):
        rc.main(["--policies", "no-folder"])


def test_level_0_sorts_turn_2_by_what_it_did_with_the_box():
    import numpy as np

    box_1, mask = [10, 10, 40, 40], [14, 12, 36, 38]
    first = [_reply(box_1)] * 5
    second = [
        format_refinement(box=box_1),  # keep
        format_refinement(box=mask),  # the turn-1 mask's bounding box
        format_refinement(box=[5, 5, 50, 50]),  # grow
        format_refinement(box=[20, 20, 30, 30]),  # shrink (not the mask's box)
        "",  # no turn-2 box
    ]
    gains = rc.classify_boxes(first, second, [[mask]] * 5, [0.0, 0.2, -0.1, 0.05, 0.0])
    assert {a: g for a, g in gains.items() if g} == {
        "keep": [0.0],
        "mask": [0.2],
        "grow": [-0.1],
        "shrink": [0.05],
        "none": [0.0],
    }
    assert rc.box_action(box_1, [30, 30, 55, 55], [mask]) == "move"
    fixes = rc.fix_counts(np.array([0.1, 0.2, 0.9, 0.8, 0.6]), np.array([0.9, 0.1, 0.95, 0.3, 0.6]))
    assert fixes == {"failed": 2, "fixed": 1, "succeeded": 3, "broken": 1}
    text = rc.box_table({"p": {"gains": gains, "fixes": fixes, "iou_turn_1": 0.5, "iou_turn_2": 0.53}})
    row = "| p | 0.500 | 0.530 | 2, 1 | 3, 1 | 1, +0.000 | 1, +0.200 | 1, -0.100 | 1, +0.050 | 0, - | 1, +0.000 |"
    assert row in text


def test_mask_approach_counts_boxes_moving_toward_or_away_from_the_mask():
    box_1, mask = [0, 0, 40, 40], [10, 10, 30, 30]  # box IoU with the mask: 0.26
    second = [
        format_refinement(box=[5, 5, 34, 34]),  # shrinks toward the mask: IoU 0.49
        format_refinement(box=[0, 0, 55, 55]),  # grows away: IoU 0.14
        format_refinement(box=[10, 0, 50, 40]),  # moves, the mask still inside: IoU unchanged, neither way
        format_refinement(box=box_1),  # keeps its box: not counted
        format_refinement(box=mask),  # copies the mask's box: counted as `mask`, not here
        "",  # no new box
    ]
    out = rc.mask_approach([_reply(box_1)] * 6, second, [[mask]] * 6)
    assert out == {"n": 3, "toward": 1, "away": 1}
    assert rc.mask_approach([_reply(box_1)], [second[0]], [[]]) == {"n": 0, "toward": 0, "away": 0}  # empty mask
    gains = rc.classify_boxes([_reply(box_1)], [second[0]], [[mask]], [0.1])
    fixes = {"failed": 0, "fixed": 0, "succeeded": 1, "broken": 0}
    text = rc.box_table({"p": {"gains": gains, "fixes": fixes, "iou_turn_1": 0.5, "iou_turn_2": 0.6, "approach": out}})
    assert text.splitlines()[2].endswith("| 3, 1 / 1 |")


def test_a_saved_policy_plays_level_0_and_its_turn_1_replays(tmp_path, capsys):
    import torch
    from grpo_refinement import _preset_argv
    from segzero_agents.grpo import policy_from_args
    from segzero_agents.presets import parse_args

    opts = load_benchmark("grpo_refinement").build_parser().parse_args([])
    bundle = policy_from_args(parse_args(_preset_argv(0, opts)), torch.device("cpu"))
    bundle.model.save_pretrained(tmp_path)
    bundle.processor.save_pretrained(tmp_path)
    rc.main(["--policies", f"random={tmp_path}", "--samples", "3", "--segmenter", "grabcut", "--level", "0"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(n for n, _ in out["random"]["gains"].values()) == 3  # the replayed turn 1 matched every episode
    assert out["random"]["fixes"]["failed"] + out["random"]["fixes"]["succeeded"] == 3
    approach = out["random"]["approach"]
    assert approach["toward"] + approach["away"] <= approach["n"] <= 3


def test_turn_1_mask_boxes_replay_the_samples_and_refuse_a_mismatch():
    import argparse

    import numpy as np

    opts = argparse.Namespace(segmenter="grabcut", level=0)
    replies = [_reply([2, 2, 53, 53]), _reply([10, 10, 45, 45])]
    env = load_benchmark("refinement_feedback_rule").two_turn_env("grabcut", 0, 56)
    ious = []
    for index, reply in enumerate(replies):
        env.reset(options={"index": index})
        ious.append(env.step(reply)[4]["iou"])
    env.close()
    boxes = rc.turn_1_mask_boxes(replies, np.array(ious), opts, 56)
    assert all(len(b) == 2 and b[0][0] >= 2 and b[0][2] <= 53 for b in boxes)  # inside the answered box
    for tight, grown in boxes:  # and that box grown by the mask warm start's margin, in the frame
        assert grown == [max(tight[0] - 4, 0), max(tight[1] - 4, 0), min(tight[2] + 4, 55), min(tight[3] + 4, 55)]
    with pytest.raises(RuntimeError, match="sample 0: replayed turn 1 scores"):
        rc.turn_1_mask_boxes(replies, np.array(ious) + 0.5, opts, 56)

"""benchmarks/swapped_feedback.py: the mask-swap counterfactual of refinement feedback (issue 18)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

from segzero_env.answers import format_reply
from segzero_env.envs.refinement import describe_mask

sf = load_benchmark("swapped_feedback")
rc = load_benchmark("refinement_choices")


def _envs(feedback: str):
    from segzero_agents.grpo import Args, make_envs

    args = Args(model_name_or_path="tiny", image_size=56, segmenter="box", feedback=feedback, max_turns=2)
    return make_envs(args, 3, 1, "val", None, None, max_turns=2)


def _turn_1(envs):
    _, info = envs.reset(seed=0, options={"sample_ids": list(envs.envs[0].dataset.sample_ids)[:3]})
    replies = [format_reply(box=[round(v) for v in b], points=[[20, 20], [22, 24]]) for b in info["gt_box"]]
    return envs.step(replies)


def test_each_prompt_describes_the_next_episodes_mask_and_keeps_its_own_answer():
    plain, swapped = _envs("text"), sf.SwappedMasks(_envs("text"))
    try:
        obs, _, _, _, info = _turn_1(plain)
        obs_s, _, _, _, info_s = _turn_1(swapped)
        own = ["\n".join(describe_mask(m)) for m in obs["prev_mask"]]
        assert len(set(own)) == 3  # three samples, three different masks
        for i in range(3):
            assert own[(i + 1) % 3] in info_s["prompt"][i] and own[i] not in info_s["prompt"][i]
            assert info_s["prompt"][i].replace(own[(i + 1) % 3], own[i]) == info["prompt"][i]
        assert list(info_s["iou"]) == list(info["iou"])  # the env is untouched: same masks, same scores
        assert (swapped.changed, swapped.swapped) == (3, 3)
    finally:
        plain.close()
        swapped.close()


def test_a_prompt_without_its_mask_is_refused():
    swapped = sf.SwappedMasks(_envs("answer"))
    try:
        with pytest.raises(ValueError, match="episode 0: its prompt does not describe its mask"):
            _turn_1(swapped)
    finally:
        swapped.close()
    masks = np.zeros((2, 4, 4), np.uint8)
    out, changed = sf.swap_mask_lines(["x\nThe current mask is empty.", "The current mask is empty."], masks, [0, 1])
    assert changed == 0 and out[0] == "x\nThe current mask is empty."  # two empty masks: nothing to swap


def test_refinement_choices_plays_a_saved_policy_on_swapped_masks(tmp_path, capsys):
    import torch
    from grpo_refinement import _preset_argv
    from segzero_agents.grpo import policy_from_args
    from segzero_agents.presets import parse_args

    opts = load_benchmark("grpo_refinement").build_parser().parse_args([])
    bundle = policy_from_args(parse_args(_preset_argv(0, opts)), torch.device("cpu"))
    bundle.model.save_pretrained(tmp_path)
    bundle.processor.save_pretrained(tmp_path)
    argv = ["--policies", f"random={tmp_path}", "--samples", "3", "--segmenter", "box", "--level", "0"]
    rc.main([*argv, "--feedback", "text", "--swap-masks"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["random"]
    changed, total = out["swapped"]
    assert 0 <= changed <= total <= 3
    with pytest.raises(SystemExit):
        rc.main([*argv, "--feedback", "none", "--swap-masks"])

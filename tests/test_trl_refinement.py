"""benchmarks/trl_refinement.py: refinement trajectories flattened for TRL's rollout_func (issue 18)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark
from segzero_agents.policy_model import load_policy
from test_agent_multiturn import make_envs as make_multiturn_envs

import segzero_env  # noqa: F401
from segzero_env.hf.chat import SYSTEM_PROMPT, batch_inputs

tr = load_benchmark("trl_refinement")
gr = load_benchmark("grpo_refinement")

G = 2


@pytest.fixture(scope="module")
def bundle():
    torch.set_num_threads(1)
    return load_policy("tiny", device=torch.device("cpu"), kl_coef=0.0)


def make_envs():
    return make_multiturn_envs("grabcut", max_turns=2, group_size=G, prompts=2)


def test_the_flattened_layout_is_the_chat_templates(bundle):
    """prompt + reply + feedback tokens are what the chat template writes for the two-turn conversation."""
    processor = bundle.processor
    tok = processor.tokenizer
    image = np.zeros((56, 56, 3), dtype=np.uint8)
    prompt, reply, feedback = "Find the red square.", '<answer>{"bbox": [1, 2, 30, 40]}</answer>', "Turn 2 of 2."
    first = batch_inputs(processor, [image], [prompt])
    flat = first["input_ids"][0].tolist() + tok.encode(reply, add_special_tokens=False)
    flat += [tok.convert_tokens_to_ids("<|im_end|>")] + tr.feedback_ids(tok, feedback, reply_ended=True)
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
        {"role": "assistant", "content": [{"type": "text", "text": reply}]},
        {"role": "user", "content": [{"type": "text", "text": feedback}]},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    expected = processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
    assert flat == expected
    # a reply cut at the length limit is closed by the feedback tokens
    assert tr.feedback_ids(tok, feedback, reply_ended=False)[0] == tok.convert_tokens_to_ids("<|im_end|>")


def test_play_flat_masks_the_feedback_and_sums_the_env_rewards(bundle):
    envs = make_envs()
    try:
        obs, info = envs.reset(seed=0)
        ids = [str(s) for s in envs.envs[0].dataset.sample_ids[:2]]
        traj = tr.play_flat(
            bundle.model, bundle.processor, envs, ids, seed=0, greedy=False, temperature=1.0, max_new_tokens=12
        )
        tok = bundle.processor.tokenizer
        for i in range(envs.num_envs):
            mask, completion = traj.env_mask[i], traj.completion_ids[i]
            assert len(mask) == len(completion) == len(traj.logprobs[i])
            assert (mask[0] == 1) and (mask[-1] == 1)  # starts and ends with a reply
            played = int(traj.turn_mask[i].sum())
            # one feedback block (mask 0) between each pair of replies, never at the ends
            blocks = sum(1 for a, b in zip([1, *mask], mask, strict=False) if a == 1 and b == 0)
            assert blocks == played - 1
            if played == 2:
                feedback = [t for t, m in zip(completion, mask, strict=True) if m == 0]
                text = tok.decode(feedback)
                assert "<|im_start|>user" in text and text.endswith("<|im_start|>assistant\n")
                assert "Turn 2" in text
            assert all(lp == 0.0 for lp, m in zip(traj.logprobs[i], mask, strict=True) if m == 0)
            assert all(lp <= 0.0 for lp in traj.logprobs[i])
        # groups share their prompt; the returns are the env's turn rewards summed
        assert traj.prompt_ids[0] == traj.prompt_ids[1] and traj.prompt_ids[0] != traj.prompt_ids[2]
        assert np.isfinite(traj.returns).all() and traj.turn_mask[:, 0].all()
        with pytest.raises(RuntimeError, match="schedule drifted"):
            tr.play_flat(
                bundle.model, bundle.processor, envs, ids, seed=0, greedy=True, temperature=1.0, max_new_tokens=4,
                expect_prompts=["not the prompt", "nor this"],
            )  # fmt: skip
    finally:
        envs.close()


def test_the_trl_arm_trains_through_grpo_trainer(tmp_path):
    gr.main(
        [
            "--seeds", "0", "--arms", "trl", "--steps", "1", "--warm-start-steps", "1", "--eval-every", "1",
            "--eval-samples", "2", "--segmenter", "grabcut", "--feedback", "text", "--out-dir", str(tmp_path),
        ]
    )  # fmt: skip
    with (tmp_path / "grpo_refinement.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["arm"], int(r["step"])) for r in rows] == [("trl", 0), ("trl", 1)]
    assert all(r["turn_advantage"] == "trajectory" and r["feedback"] == "text" for r in rows)
    for r in rows:
        assert 0.0 <= float(r["giou_turn_1"]) <= 1.0 and 1.0 <= float(r["turns_used"]) <= 2.0
    assert "TRL (trajectory-level GRPO" in (tmp_path / "grpo_refinement.md").read_text()

"""The GRPO agent learns: the update scores replies under the sampler's own distribution, the logged
reward terms are real terms, and a few steps on one batch raise that batch's reward."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from segzero_agents.distributed import gather_reply_stats
from segzero_agents.grpo import _step_metrics
from segzero_agents.policy_model import load_policy
from segzero_agents.rollout import repeat_rows, reply_log_probs, sample_replies, vision_token_ids

import segzero_env  # noqa: F401
from segzero_env.hf.chat import batch_inputs

G = 4


@pytest.fixture(scope="module")
def envs():
    torch.set_num_threads(1)
    e = gym.make_vec(
        "ReasonSegShapes-v0", num_envs=2 * G, vectorization_mode="vector_entry_point",
        group_size=G, image_size=56, segmenter="box", autoreset_mode="Disabled",  # as the trainer's make_envs
    )
    yield e
    e.close()


def test_update_log_probs_are_the_samplers(envs):
    # generate() never samples the suppressed vision tokens (their logits become -inf); the update's
    # log-probs must leave them out of the softmax too, or every reply is scored under another policy
    bundle = load_policy("tiny", device=torch.device("cpu"), tiny_hidden=32, kl_coef=0.0)
    model, processor = bundle.model, bundle.processor
    obs, info = envs.reset(seed=0)
    prompt = dict(batch_inputs(processor, list(obs["image"][::G]), list(info["prompt"][::G])))
    tok = processor.tokenizer
    eos, suppress = tok.convert_tokens_to_ids("<|im_end|>"), vision_token_ids(processor)
    torch.manual_seed(0)
    rollout = sample_replies(
        model, prompt, G, max_new_tokens=12, temperature=1.0, top_p=1.0,
        eos_token_id=eos, pad_token_id=tok.pad_token_id, suppress_token_ids=suppress,
    )
    assert set(rollout.excluded_token_ids) == set(suppress) and suppress

    torch.manual_seed(0)
    repeated = repeat_rows(prompt, G)
    out = model.generate(
        **repeated, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=12, eos_token_id=eos,
        pad_token_id=tok.pad_token_id, suppress_tokens=suppress, output_scores=True, return_dict_in_generate=True,
    )
    ids = out.sequences[:, repeated["input_ids"].shape[1]:]
    assert torch.equal(ids.masked_fill(rollout.completion_mask == 0, tok.pad_token_id), rollout.completion_ids)
    sampler = torch.log_softmax(torch.stack(out.scores, dim=1).float(), dim=-1).gather(-1, ids[..., None])[..., 0]
    sampler = sampler * rollout.completion_mask
    with torch.no_grad():
        trainer = reply_log_probs(
            model, rollout.prompt, rollout.completion_ids, rollout.completion_mask, rollout.excluded_token_ids
        )
        ignoring = reply_log_probs(model, rollout.prompt, rollout.completion_ids, rollout.completion_mask)
    assert torch.allclose(trainer, sampler, atol=1e-4)
    # the old computation (full softmax) differs on every reply token
    assert (ignoring - sampler)[rollout.completion_mask.bool()].abs().min() > 1e-3


def test_logged_reward_terms_are_real_terms(envs):
    from accelerate import Accelerator

    envs.reset(seed=0)
    replies = ['<think>x</think><answer>{"bbox": [1, 1, 30, 30], "points_1": [5, 5], "points_2": [9, 9]}</answer>']
    _, rewards, _, _, infos = envs.step(replies * (2 * G))
    columns, table = gather_reply_stats(
        Accelerator(cpu=True), np.asarray(rewards), infos, torch.full((2 * G,), 5), torch.zeros(2 * G, dtype=torch.bool)
    )
    metrics = _step_metrics(columns, table, G)
    terms = {k for k in metrics if k.startswith("rewards/")} - {"rewards/mean", "rewards/std",
                                                               "rewards/frac_zero_std_groups"}
    assert "rewards/mask_iou" in terms and "rewards/think_format" in terms
    # the vector env's "_<name>" presence masks are not reward terms
    assert not [k for k in metrics if "/_" in k]
    assert metrics["rewards/think_format"] == 1.0

"""The GRPO trainer on CPU with the tiny model, the shapes env and the box segmenter."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from segzero_agents.evaluation import collapse_warning
from segzero_agents.grpo import Args, grpo_update, scheduled_sample_ids, train
from segzero_agents.grpo_math import group_advantages
from segzero_agents.policy_model import load_policy
from segzero_agents.presets import parse_args
from segzero_agents.rollout import sample_replies, vision_token_ids

import segzero_env  # noqa: F401
from segzero_env.hf.chat import batch_inputs

G = 2
P = 2


@pytest.fixture(scope="module")
def envs():
    torch.set_num_threads(1)
    e = gym.make_vec(
        "ReasonSegShapes-v0",
        num_envs=P * G,
        vectorization_mode="vector_entry_point",
        group_size=G,
        image_size=56,
        segmenter="box",
    )
    yield e
    e.close()


def _rollout(bundle, envs, seed=0):
    obs, info = envs.reset(seed=seed)
    batch = batch_inputs(bundle.processor, list(obs["image"][::G]), list(info["prompt"][::G]))
    tok = bundle.processor.tokenizer
    torch.manual_seed(seed)
    return sample_replies(
        bundle.model,
        dict(batch),
        G,
        max_new_tokens=8,
        temperature=1.0,
        top_p=1.0,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
        suppress_token_ids=vision_token_ids(bundle.processor),
    )


def _update(bundle, rollout, advantages, **overrides):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    args = Args(
        model_name_or_path="tiny",
        learning_rate=1e-2,
        weight_decay=0.0,
        micro_batch_size=3,
        group_size=G,
        max_new_tokens=8,
        image_size=56,
        **overrides,
    )
    params = [p for p in bundle.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    model, ref = bundle.model, bundle.ref_model
    return grpo_update(accelerator, model, ref, bundle.uses_lora, opt, sched, rollout, advantages, args)


@pytest.mark.parametrize("use_lora", [False, True])
def test_one_step_changes_every_trainable_parameter(envs, use_lora):
    bundle = load_policy(
        "tiny", device=torch.device("cpu"), use_lora=use_lora, lora_r=4, lora_alpha=8, lora_dropout=0.0, kl_coef=5e-3
    )
    rollout = _rollout(bundle, envs)
    before = {n: p.detach().clone() for n, p in bundle.model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in bundle.model.named_parameters() if not p.requires_grad}
    assert before
    advantages = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), G)
    stats = _update(bundle, rollout, advantages)
    if use_lora:
        # LoRA's B starts at zero, so A gets no gradient on the very first step; the second moves it
        stats = _update(bundle, rollout, advantages)
    assert np.isfinite(stats["loss"]) and stats["grad_norm"] > 0
    unchanged = [n for n, p in bundle.model.named_parameters() if p.requires_grad and torch.equal(p, before[n])]
    assert unchanged == []
    for n, p in bundle.model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[n]), n


def test_equal_rewards_give_no_gradient(envs):
    bundle = load_policy("tiny", device=torch.device("cpu"), kl_coef=0.0)
    rollout = _rollout(bundle, envs, seed=1)
    before = {n: p.detach().clone() for n, p in bundle.model.named_parameters()}
    advantages = group_advantages(torch.tensor([0.5, 0.5, 2.0, 2.0]), G)
    assert torch.equal(advantages, torch.zeros(4))
    stats = _update(bundle, rollout, advantages, kl_coef=0.0)
    assert stats["grad_norm"] == 0.0 and stats["loss"] == 0.0
    for n, p in bundle.model.named_parameters():
        assert torch.equal(p, before[n]), n


@pytest.mark.parametrize("use_lora", [False, True])
def test_kl_is_zero_when_policy_equals_reference(envs, use_lora):
    bundle = load_policy("tiny", device=torch.device("cpu"), use_lora=use_lora, lora_dropout=0.0, kl_coef=1.0)
    assert (bundle.ref_model is None) == use_lora
    rollout = _rollout(bundle, envs, seed=2)
    stats = _update(bundle, rollout, torch.zeros(4), kl_coef=1.0)
    assert stats["kl"] == 0.0
    # after a step with non-zero advantages the policy has moved away from the reference
    _update(bundle, rollout, group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), G), kl_coef=1.0)
    assert _update(bundle, rollout, torch.zeros(4), kl_coef=1.0)["kl"] > 0


def test_sample_schedule_covers_an_epoch_without_repeats():
    ids = [str(i) for i in range(10)]
    drawn = [s for step in range(5) for rank in range(2) for s in scheduled_sample_ids(ids, step, 1, rank, 2, seed=3)]
    assert sorted(drawn) == sorted(ids)
    assert scheduled_sample_ids(ids, 7, 2, 0, 1, 3) == scheduled_sample_ids(ids, 7, 2, 0, 1, 3)


def test_parse_args_applies_preset_then_flags():
    args = parse_args(["--preset", "tiny-cpu", "--steps", "3", "--group-size", "3", "--resume"])
    assert args.model_name_or_path == "tiny" and args.image_size == 56
    assert args.steps == 3 and args.group_size == 3 and args.resume is True
    with pytest.raises(ValueError, match="group_size"):
        parse_args(["--group-size", "1"])


def _records(path):
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out.append({k: v for k, v in rec.items() if not k.startswith(("time/", "memory/"))})
    return out


def test_resume_equals_uninterrupted(tmp_path):
    common = [
        "--preset",
        "tiny-cpu",
        "--warm-start-steps",
        "60",
        "--warm-start-lr",
        "1e-2",
        "--save-every",
        "2",
        "--log-replies-every",
        "0",
    ]
    full = tmp_path / "full"
    part = tmp_path / "part"
    summary = train(parse_args([*common, "--steps", "4", "--output-dir", str(full)]))
    train(parse_args([*common, "--steps", "2", "--output-dir", str(part)]))
    train(parse_args([*common, "--steps", "4", "--output-dir", str(part), "--resume"]))

    full_records, part_records = _records(full / "metrics.jsonl"), _records(part / "metrics.jsonl")
    assert [r["step"] for r in full_records] == [1, 2, 3, 4]
    assert full_records == part_records
    assert {
        "step",
        "loss",
        "reward_mean",
        "kl",
        "rewards/std",
        "losses/kl",
        "policy/clip_frac",
        "replies/unusable_rate",
        "env/iou",
    } <= set(full_records[0])
    # the run learnt something: some group had different rewards, and the policy left the reference
    assert max(r["rewards/std"] for r in full_records) > 0
    assert full_records[-1]["kl"] > 0
    w_full = load_file(full / "checkpoints/step_000004/policy/model.safetensors")
    w_part = load_file(part / "checkpoints/step_000004/policy/model.safetensors")
    assert w_full.keys() == w_part.keys()
    assert all(torch.equal(w_full[k], w_part[k]) for k in w_full)
    state = json.loads((full / "checkpoints/step_000004/trainer_state.json").read_text())
    assert state["step"] == 4 and state["samples_drawn"] == 8
    assert summary["peak_memory_mb"] > 0
    assert (full / "tensorboard").is_dir()


def test_resume_without_checkpoint_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="drop --resume"):
        train(
            parse_args(
                [
                    "--preset",
                    "tiny-cpu",
                    "--warm-start-steps",
                    "0",
                    "--steps",
                    "1",
                    "--output-dir",
                    str(tmp_path),
                    "--resume",
                ]
            )
        )


def test_the_starting_evaluation_counts_the_boxes_the_policy_gives(tmp_path, capsys):
    # What the tiny preset's warm start leaves differs between CPUs (AVX2 and AVX-512 kernels round
    # differently, and 120 steps of training amplify it): on one machine its greedy replies give one
    # box for all 8 images, on another none is readable. The counts and the note must agree either way.
    argv = ["--preset", "tiny-cpu", "--steps", "1", "--eval-every", "1", "--eval-samples", "8"]
    argv += ["--log-replies-every", "0", "--output-dir", str(tmp_path)]
    train(parse_args(argv))
    start = _records(tmp_path / "metrics.jsonl")[0]
    assert start["step"] == 0
    assert start["eval/n"] == 8
    assert 0 <= start["eval/distinct_boxes"] <= start["eval/boxed"] <= 8
    assert start["eval/distinct_boxes"] >= min(start["eval/boxed"], 1)
    assert start["eval/boxed"] <= round(start["eval/n"] * (1 - start["eval/unusable_rate"]))
    said = capsys.readouterr().out
    note = collapse_warning(start)
    assert ("collapsed start:" in said) == (note is not None)
    if note is not None:
        assert note in said


def test_a_collapsed_start_is_reported_with_its_counts(tmp_path, capsys, monkeypatch):
    # the note's wiring, whatever this CPU's warm start gives: the starting evaluation reports one box
    # for 8 images (the run's own evaluation is replaced, the run itself is real)
    collapsed = {"eval/giou": 0.1, "eval/ciou": 0.1, "eval/n": 8.0, "eval/unusable_rate": 0.0}
    collapsed |= {"eval/boxed": 8.0, "eval/distinct_boxes": 1.0}
    monkeypatch.setattr("segzero_agents.grpo.evaluate", lambda *a, **k: dict(collapsed))
    argv = ["--preset", "tiny-cpu", "--steps", "1", "--eval-every", "1", "--eval-samples", "8"]
    argv += ["--warm-start-steps", "0", "--log-replies-every", "0", "--output-dir", str(tmp_path)]
    train(parse_args(argv))
    assert _records(tmp_path / "metrics.jsonl")[0] == {"step": 0, **collapsed}
    said = capsys.readouterr().out
    assert "collapsed start: the greedy policy gives 1 distinct box(es) for 8 evaluated images" in said

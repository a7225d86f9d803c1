"""Refinement episodes in the GRPO trainer: trajectories, masking, batched stepping, update, resume."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from segzero_agents.grpo import Args, train
from segzero_agents.multiturn_rollout import (
    image_feedback_line,
    overlay_mask,
    play_episodes,
    refinement_advantages,
    refinement_metrics,
    refinement_update,
    turn_inputs,
)
from segzero_agents.policy_model import load_policy
from segzero_agents.presets import parse_args
from segzero_agents.rollout import Rollout, repeat_rows, vision_token_ids
from segzero_agents.warm_start import reply_tensors

import segzero_env  # noqa: F401
from segzero_env.answers import format_refinement, format_reply
from segzero_env.segmenters.box import BoxSegmenter

G, P, K = 4, 2, 3


class CountingBox(BoxSegmenter):
    """The real box segmenter, counting its batched calls."""

    def __init__(self):
        self.calls = 0

    def segment_many(self, requests):
        self.calls += 1
        return super().segment_many(requests)


def make_envs(segmenter, max_turns=K, group_size=G, prompts=P):
    return gym.make_vec(
        "ReasonSegShapes-v0",
        num_envs=prompts * group_size,
        vectorization_mode="vector_entry_point",
        group_size=group_size,
        image_size=56,
        segmenter=segmenter,
        max_turns=max_turns,
        autoreset_mode="NextStep",
    )


@pytest.fixture(scope="module")
def bundle():
    torch.set_num_threads(1)
    return load_policy("tiny", device=torch.device("cpu"), kl_coef=0.0)


def scripted(processor, plan):
    """A scripted policy: ``plan(member, turn) -> reply``, tokenised like the model's own replies."""

    def write(batch, repeats, members, turn):
        replies = [plan(m % G, turn) for m in members]
        ids, mask = reply_tensors(processor, replies)
        return Rollout(repeat_rows(batch, repeats), ids, mask, torch.zeros(len(replies), dtype=torch.bool))

    return write


def plan(member, turn):
    """Member 0 stops with its first answer, member 1 with a bare stop on turn 2, the others play K turns."""
    box = [4 + 3 * turn, 4 + 3 * turn, 40 - 2 * turn, 44 - turn]
    if member == 0:
        return format_refinement(box=box, stop=True)
    if member == 1 and turn == 1:
        return format_refinement(stop=True)
    return format_reply(box=box, points=[[20, 20], [22, 24]])


def test_early_stops_are_masked_and_each_turn_is_one_segmenter_call(bundle):
    seg = CountingBox()
    envs = make_envs(seg)
    ids = list(envs.envs[0].dataset.sample_ids)[:P]
    traj = play_episodes(
        None,
        bundle.processor,
        envs,
        ids,
        seed=0,
        feedback="text",
        max_new_tokens=8,
        suppress_token_ids=[],
        write_replies=scripted(bundle.processor, plan),
    )
    expected_mask = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]] * P)
    assert (traj.turn_mask == expected_mask).all()
    # one batched segmenter call per turn for all P x G members (turn 2's bare stop is not re-segmented)
    assert seg.calls == K == traj.segmenter_steps
    assert [b.members for b in traj.turns] == [list(range(8)), [1, 2, 3, 5, 6, 7], [2, 3, 6, 7]]
    assert [b.rollout.completion_ids.shape[0] for b in traj.turns] == [8, 6, 4]
    # text feedback: turn 2's prompt carries the env's description of the member's own answer
    turn_2_prompt = bundle.processor.tokenizer.decode(traj.turns[1].rollout.prompt["input_ids"][0])
    assert "Turn 2 of 3. Your current answer:" in turn_2_prompt and "Coarse map" in turn_2_prompt
    # the gain rewards telescope: each return is the final IoU plus the format terms of the turns played
    returns = (traj.rewards * traj.turn_mask).sum(axis=1)
    formats = traj.terms["think_format"] + traj.terms["answer_format"]
    assert np.allclose(returns, traj.ious[:, -1] + formats)
    assert (traj.rewards[traj.turn_mask == 0] == 0).all()
    assert traj.stopped.tolist() == [True, True, False, False] * P
    # a finished trajectory keeps its last IoU on the later turns
    assert traj.ious[0, 2] == traj.ious[0, 0] and traj.ious[1, 2] == traj.ious[1, 1]
    m = refinement_metrics(traj, G)
    assert m["turns/stop_rate"] == 0.5 and m["turns/turns_used"] == pytest.approx(2.25)
    assert m["turns/played_3"] == 0.5 and m["turns/iou_3"] == pytest.approx(traj.ious[:, 2].mean())
    for kind in ("trajectory", "per-turn", "immediate"):
        adv = refinement_advantages(traj, G, kind, "group")
        assert (adv[torch.as_tensor(traj.turn_mask) == 0] == 0).all() and adv.abs().sum() > 0
    envs.close()


def test_feedback_shows_the_mask_as_image_or_text_or_nothing():
    envs = make_envs(BoxSegmenter(), max_turns=2, group_size=2, prompts=1)
    obs, info = envs.reset(seed=0)
    first = list(info["prompt"])
    obs, *_, info = envs.step([format_reply(box=[0, 0, 27, 27], points=[[5, 5], [9, 9]])] * 2)
    images, prompts = turn_inputs(obs, info, first, [0], "image", 2)
    shaded = overlay_mask(obs["image"][0], obs["prev_mask"][0])
    assert np.array_equal(images[0], shaded) and not np.array_equal(shaded, obs["image"][0])
    assert prompts[0] == f"{first[0]}\n{image_feedback_line(1, 2)}"
    images, prompts = turn_inputs(obs, info, first, [0], "text", 2)
    assert np.array_equal(images[0], obs["image"][0]) and "Coarse map" in prompts[0] and prompts[0] != first[0]
    images, prompts = turn_inputs(obs, info, first, [0], "none", 2)
    assert np.array_equal(images[0], obs["image"][0]) and prompts[0] == first[0]
    with pytest.raises(ValueError, match="feedback"):
        turn_inputs(obs, info, first, [0], "video", 2)
    envs.close()


@pytest.mark.parametrize("feedback", ["text", "text-iou", "answer", "none"])
def test_text_feedback_states_the_mask_its_iou_or_only_the_answer(feedback):
    from segzero_agents.grpo import make_envs as trainer_envs

    args = Args(model_name_or_path="tiny", image_size=56, segmenter="box", feedback=feedback, max_turns=2)
    envs = trainer_envs(args, 2, 2, "val", None, None, max_turns=2)
    obs, info = envs.reset(seed=0)
    first = list(info["prompt"])
    obs, _, _, _, info = envs.step([format_reply(box=[0, 0, 27, 27], points=[[5, 5], [9, 9]])] * 2)
    _, prompts = turn_inputs(obs, info, first, [0, 1], feedback, 2)
    iou_lines = [line for line in prompts[0].splitlines() if line.startswith("IoU of the current mask")]
    if feedback == "text-iou":  # the line states this member's own IoU, as the env scored it
        assert iou_lines == [f"IoU of the current mask with the target: {info['iou'][0]:.3f}."]
        assert bool(info["feedback_leaks_gt"][0])
    else:
        assert iou_lines == [] and not bool(info["feedback_leaks_gt"][0])
    assert (prompts[0] == first[0]) == (feedback == "none")
    # "answer" keeps the turn marker and the previous answer, and says nothing of the mask
    assert ("Turn 2 of 2. Your current answer:" in prompts[0]) == (feedback != "none")
    assert ("bbox [0, 0, 27, 27]" in prompts[0]) == (feedback != "none")
    assert ("Coarse map" in prompts[0]) == (feedback in ("text", "text-iou"))
    assert (info["feedback_level"][0] == "answer") == (feedback == "answer")
    envs.close()


def _update(bundle, traj, advantages, micro_batch_size=64):
    from accelerate import Accelerator

    args = Args(
        model_name_or_path="tiny",
        group_size=G,
        max_new_tokens=8,
        image_size=56,
        kl_coef=0.0,
        micro_batch_size=micro_batch_size,
        max_turns=K,
    )
    params = [p for p in bundle.model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return refinement_update(Accelerator(cpu=True), bundle.model, None, False, opt, sched, traj, advantages, args)


def test_model_step_trains_every_turn_and_micro_batches_match(bundle):
    envs = make_envs(BoxSegmenter())
    ids = list(envs.envs[0].dataset.sample_ids)[:P]
    torch.manual_seed(0)
    traj = play_episodes(
        bundle.model,
        bundle.processor,
        envs,
        ids,
        seed=0,
        feedback="image",
        max_new_tokens=6,
        suppress_token_ids=vision_token_ids(bundle.processor),
    )
    envs.close()
    assert traj.turn_mask.sum() == P * G * K  # a random model never stops
    # the feedback is in the prompt of turn 2, never in its reply tokens
    tok = bundle.processor.tokenizer
    prompt_text = tok.decode(traj.turns[1].rollout.prompt["input_ids"][0])
    assert "your current mask is shaded" in prompt_text
    reply_ids = traj.turns[1].rollout.completion_ids[0][traj.turns[1].rollout.completion_mask[0].bool()]
    assert "shaded" not in tok.decode(reply_ids)

    start = {n: p.detach().clone() for n, p in bundle.model.named_parameters()}
    # advantages on turn 2 only: its reply tokens alone must move the policy
    only_turn_2 = torch.zeros(P * G, K)
    only_turn_2[:, 1] = torch.tensor([1.0, -1.0] * (P * G // 2))
    stats = _update(bundle, traj, only_turn_2)
    assert stats["grad_norm"] > 0
    moved = {n: p.detach().clone() for n, p in bundle.model.named_parameters()}
    changed = [n for n in start if not torch.equal(start[n], moved[n])]
    assert "lm_head.weight" in changed or "model.language_model.embed_tokens.weight" in changed
    # the same step in micro-batches of one reply gives the same parameters
    with torch.no_grad():
        for n, p in bundle.model.named_parameters():
            p.copy_(start[n])
    _update(bundle, traj, only_turn_2, micro_batch_size=1)
    for n, p in bundle.model.named_parameters():
        assert torch.allclose(p, moved[n], atol=1e-6), n
    with torch.no_grad():
        for n, p in bundle.model.named_parameters():
            p.copy_(start[n])


def _records(path):
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith(("time/", "memory/"))}
        for line in path.read_text().splitlines()
    ]


def test_multiturn_resume_equals_uninterrupted(tmp_path):
    common = [
        "--preset",
        "tiny-cpu",
        "--warm-start-steps",
        "10",
        "--warm-start-lr",
        "1e-2",
        "--save-every",
        "1",
        "--log-replies-every",
        "1",
        "--max-turns",
        "2",
        "--max-new-tokens",
        "16",
        "--eval-every",
        "2",
        "--eval-samples",
        "4",
        "--turn-advantage",
        "per-turn",
    ]
    full, part = tmp_path / "full", tmp_path / "part"
    train(parse_args([*common, "--steps", "2", "--output-dir", str(full)]))
    train(parse_args([*common, "--steps", "1", "--output-dir", str(part)]))
    train(parse_args([*common, "--steps", "2", "--output-dir", str(part), "--resume"]))
    full_records, part_records = _records(full / "metrics.jsonl"), _records(part / "metrics.jsonl")
    assert [r["step"] for r in full_records] == [0, 1, 2]
    assert full_records == part_records
    assert {
        "turns/iou_1",
        "turns/iou_2",
        "turns/stop_rate",
        "turns/turns_used",
        "eval/giou_turn_1",
        "eval/giou_turn_2",
        "eval/stop_rate",
        "eval/boxed",
        "eval/distinct_boxes",
    } <= set(full_records[-1])
    assert all(0 <= r["eval/distinct_boxes"] <= r["eval/boxed"] <= 4 for r in full_records if "eval/boxed" in r)
    assert full_records[1]["rollout/replies"] == full_records[1]["turns/turns_used"] * 8
    w_full = load_file(full / "checkpoints/step_000002/policy/model.safetensors")
    w_part = load_file(part / "checkpoints/step_000002/policy/model.safetensors")
    assert all(torch.equal(w_full[k], w_part[k]) for k in w_full)


def test_bad_refinement_arguments_are_refused():
    with pytest.raises(ValueError, match="feedback"):
        Args(feedback="sound")
    with pytest.raises(ValueError, match="turn_advantage"):
        Args(turn_advantage="episode")
    with pytest.raises(ValueError, match="max_turns"):
        Args(max_turns=0)


def test_eval_blocks_cover_the_first_samples_once_and_pad_the_last_block():
    from types import SimpleNamespace

    from segzero_agents.evaluation import eval_blocks

    envs = make_envs("box", max_turns=2, group_size=1, prompts=4)
    try:
        ids = list(envs.envs[0].dataset.sample_ids)[:6]
        blocks = list(eval_blocks(envs, SimpleNamespace(eval_samples=6)))
        assert blocks == [(4, ids[:4]), (2, [ids[4], ids[5], ids[5], ids[5]])]
        # two processes: each takes every other id, and together they cover the six once
        shards = [
            list(eval_blocks(envs, SimpleNamespace(eval_samples=6), SimpleNamespace(process_index=r, num_processes=2)))
            for r in range(2)
        ]
        assert shards == [[(3, [ids[0], ids[2], ids[4], ids[4]])], [(3, [ids[1], ids[3], ids[5], ids[5]])]]
    finally:
        envs.close()


def test_a_policy_that_gives_one_box_for_every_image_is_reported_collapsed():
    from types import SimpleNamespace

    from segzero_agents.evaluation import box_diversity, collapse_warning, first_boxes

    same = format_reply(box=(22, 0, 36, 28), points=[(25, 5), (30, 20)], think="the target")
    replies = [same] * 6 + ["no answer", "<answer>{'bbox': [1, 2]}</answer>"]
    boxes = first_boxes(replies)
    assert boxes == [(22.0, 0.0, 36.0, 28.0)] * 6  # the unusable replies give no box
    one_process = SimpleNamespace(num_processes=1)
    metrics = box_diversity(boxes, one_process)
    assert metrics == {"eval/boxed": 6.0, "eval/distinct_boxes": 1.0}
    assert "1 distinct box(es) for 6 evaluated images" in collapse_warning(metrics)
    varied = [format_reply(box=(i, i, 40 + i, 40 + i), points=[(i + 1, i + 1)] * 2, think="t") for i in range(32)]
    assert collapse_warning(box_diversity(first_boxes(varied), one_process)) is None
    # a few replies say too little to call a collapse; 4 boxes over 32 replies is still one
    assert collapse_warning({"eval/boxed": 3.0, "eval/distinct_boxes": 1.0}) is None
    assert collapse_warning({"eval/boxed": 32.0, "eval/distinct_boxes": 4.0}) is not None
    assert collapse_warning({"eval/boxed": 32.0, "eval/distinct_boxes": 5.0}) is None

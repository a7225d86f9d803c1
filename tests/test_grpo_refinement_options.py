"""benchmarks/grpo_refinement.py: --segmenter, --feedback and --warm-start-refine (issue 18)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

from segzero_env.answers import format_reply
from segzero_env.parsing import parse_reply

gr = load_benchmark("grpo_refinement")

START = Path("/tmp/start")


def _argv(arm: str, *options: str) -> list[str]:
    return gr.arm_argv(arm, 0, gr.build_parser().parse_args(list(options)), "/tmp/out", START)


def _flag(argv: list[str], name: str) -> list[str]:
    """Every value given to ``name`` (the trainer keeps the last one)."""
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def test_defaults_build_todays_trainer_argv():
    common = [
        "--preset", "tiny-learn", "--seed", "0", "--learning-rate", "0.0003", "--warm-start-steps", "400",
        "--warm-start-jitter", "0.1", "--model-name-or-path", str(START), "--warm-start-steps", "0",
        "--steps", "60", "--eval-every", "20", "--eval-samples", "32", "--output-dir", "/tmp/out",
        "--log-replies-every", "0", "--save-every", "0",
    ]  # fmt: skip
    expected = {
        "single": ["--max-turns", "1", "--eval-max-turns", "2", "--feedback", "image"],
        "multi": ["--max-turns", "2", "--eval-max-turns", "2", "--feedback", "image"],
        "ablation": ["--max-turns", "2", "--eval-max-turns", "2", "--feedback", "none"],
    }
    for arm, tail in expected.items():
        assert _argv(arm) == [*common, *tail, "--turn-advantage", "trajectory"]
    opts = gr.build_parser().parse_args([])
    assert opts.segmenter is None and opts.feedback == "image" and not opts.warm_start_refine
    assert "--segmenter" not in gr._preset_argv(0, opts)


@pytest.mark.parametrize("arm", list(gr.ARMS))
def test_options_reach_the_trainer(arm):
    from segzero_agents.presets import parse_args

    argv = _argv(arm, "--segmenter", "grabcut", "--feedback", "text", "--warm-start-refine")
    assert _flag(argv, "--segmenter") == ["grabcut"]
    args = parse_args(argv)
    assert args.segmenter == "grabcut"
    assert args.feedback == (gr.ARMS[arm]["feedback"] or "text")
    assert args.max_turns == (1 if arm == "single" else 2) and args.eval_max_turns == 2
    # the preset's segmenter and level stay when the options are not given
    assert parse_args(_argv(arm)).segmenter == "box"
    assert json.loads(parse_args(_argv(arm)).dataset_kwargs) == {"level": 0}
    assert json.loads(parse_args(_argv(arm, "--level", "1")).dataset_kwargs) == {"level": 1}


def test_level_reaches_the_training_and_evaluation_envs():
    from segzero_agents.grpo import make_envs
    from segzero_agents.presets import parse_args

    args = parse_args(_argv("multi", "--level", "1"))
    for split in ("train", "val"):
        envs = make_envs(args, 1, 1, split, None, None, max_turns=2)
        try:
            assert envs.envs[0].dataset.level == 1
        finally:
            envs.close()
    opts = gr.build_parser().parse_args(["--level", "1"])
    assert gr._setting(opts)["level"] == 1 and gr._setting(gr.build_parser().parse_args([]))["level"] == 0


def test_warm_start_env_uses_the_segmenter():
    from segzero_agents.presets import parse_args

    opts = gr.build_parser().parse_args(["--segmenter", "grabcut"])
    assert parse_args(gr._preset_argv(3, opts)).segmenter == "grabcut"


def test_restate_reply_is_a_refinement_keeping_the_box():
    reply = gr.restate_reply([25.0, 10, 46, 43])
    parsed = parse_reply(reply)
    assert parsed.ok and parsed.think_format and not parsed.stop
    assert parsed.refinement is not None and parsed.refinement.box == (25.0, 10.0, 46.0, 43.0)
    assert parsed.refinement.positive_points == () and parsed.refinement.negative_points == ()


def test_refine_rows_show_the_trainers_turn_2_inputs_and_restate_the_current_box():
    from segzero_agents.grpo import make_envs, scheduled_sample_ids
    from segzero_agents.multiturn_rollout import turn_inputs
    from segzero_agents.presets import parse_args
    from segzero_agents.warm_start import oracle_reply

    opts = gr.build_parser().parse_args(["--segmenter", "grabcut"])
    args = parse_args(gr._preset_argv(0, opts))
    envs = make_envs(args, 3, 1, args.split, args.dataset, args.data_root, max_turns=2)
    try:
        ids = scheduled_sample_ids(list(envs.envs[0].dataset.sample_ids), 0, 3, 0, 1, 1)
        _, info = envs.reset(seed=0, options={"sample_ids": ids})
        rng = np.random.default_rng([0, 0])
        replies = [oracle_reply(info["gt_box"][i], info["gt_points"][i], 56, 0.1, rng) for i in range(3)]
        images, prompts, targets = gr.refine_rows(envs, 0, ids, replies)
        assert len(images) == len(prompts) == len(targets) == 3
        for reply, prompt, target in zip(replies, prompts, targets, strict=True):
            box = parse_reply(reply).objects[0].box
            assert "Turn 2 of 2" in prompt and f"bbox [{', '.join(str(round(v)) for v in box)}]" in prompt
            refined = parse_reply(target)
            assert refined.ok and refined.refinement is not None and refined.refinement.box == box
        # the same rows the trainer builds with text feedback on the same state
        obs, info = envs.reset(seed=0, options={"sample_ids": ids})
        first = [str(p) for p in info["prompt"]]
        obs, _, _, _, info = envs.step(replies)
        want_images, want_prompts = turn_inputs(obs, info, first, [0, 1, 2], "text", 2)
        assert prompts == want_prompts
        assert all(np.array_equal(a, b) for a, b in zip(images, want_images, strict=True))
        # restating gains nothing
        iou_1 = np.asarray(info["iou"], float)
        _, _, _, _, info = envs.step(targets)
        np.testing.assert_allclose(np.asarray(info["iou"], float), iou_1, atol=1e-6)
    finally:
        envs.close()


def test_mask_targets_restate_the_turn_1_masks_grown_box():
    from refinement_feedback_rule import mask_box
    from segzero_agents.grpo import make_envs

    targets = {}
    for feedback in ("text", "answer"):  # answer: the prompt hides the mask, the targets stay the same
        args = gr.refine_feedback_args(parse_args_of(["--segmenter", "grabcut", "--feedback", feedback]), feedback)
        envs = make_envs(args, 2, 1, "train", None, None, max_turns=2)
        try:
            ids = list(envs.envs[0].dataset.sample_ids)[:2]
            _, info = envs.reset(seed=0, options={"sample_ids": ids})
            replies = [format_reply(box=[round(v) for v in b], points=[[20, 20], [22, 24]]) for b in info["gt_box"]]
            _, prompts, targets[feedback] = gr.refine_rows(envs, 0, ids, replies, to_mask=[True, False])
            assert ("The current mask covers" in prompts[0]) == (feedback == "text")
            if feedback == "text":
                envs.reset(seed=0, options={"sample_ids": ids})
                obs, *_ = envs.step(replies)  # the same turn 1 again: its masks are the ones refine_rows saw
                want = mask_box(obs["prev_mask"][0], gr.MASK_MARGIN, 56)
                assert want is not None
                assert parse_reply(targets[feedback][0]).refinement.box == tuple(float(v) for v in want)
            # the coin's other side restates the answer
            assert parse_reply(targets[feedback][1]).refinement.box == parse_reply(replies[1]).objects[0].box
        finally:
            envs.close()
    assert targets["answer"] == targets["text"]
    assert "restates its box or the mask's" in gr.describe_setting([{"warm_start_refine": 1, "refine_targets": "mask"}])


def parse_args_of(options: list[str]):
    from segzero_agents.presets import parse_args

    return parse_args(gr._preset_argv(0, gr.build_parser().parse_args(options)))


@pytest.mark.parametrize("feedback", ["image", "text", "text-iou", "answer"])
def test_warm_start_turn_2_prompts_carry_the_iou_only_under_text_iou(feedback):
    from segzero_agents.grpo import make_envs
    from segzero_agents.presets import parse_args

    opts = gr.build_parser().parse_args(["--feedback", feedback])
    args = gr.refine_feedback_args(parse_args(gr._preset_argv(0, opts)), opts.feedback)
    envs = make_envs(args, 2, 1, "train", None, None, max_turns=2)
    try:
        ids = list(envs.envs[0].dataset.sample_ids)[:2]
        _, info = envs.reset(seed=0, options={"sample_ids": ids})
        replies = [format_reply(box=[round(v) for v in box], points=[[20, 20], [22, 24]]) for box in info["gt_box"]]
        _, prompts, _ = gr.refine_rows(envs, 0, ids, replies)
        assert all("Turn 2 of 2" in p for p in prompts)
        assert all(("IoU of the current mask" in p) == (feedback == "text-iou") for p in prompts)
        assert all(("Coarse map" in p) == (feedback != "answer") for p in prompts)  # a no-mask run's own
    finally:
        envs.close()


def test_describe_setting_names_segmenter_and_feedback():
    assert gr.describe_setting([{"segmenter": "box", "feedback": "image", "warm_start_refine": 0}]) == (
        "box segmenter, image feedback (multi training, single/multi evaluation), turn-1 warm start, "
        "trajectory advantages"
    )
    assert gr.describe_setting([{}]).startswith("box segmenter, image feedback")


def test_report_only_reads_csvs_written_before_the_options(tmp_path):
    row = {
        "arm": "multi", "seed": 0, "step": 0, "step_s": 1.0, "giou_turn_1": 0.2, "giou_turn_2": 0.25,
        "giou_last": 0.25, "stop_rate": 0.0, "turns_used": 2.0, "unusable_rate": 0.0, "command": "python x",
    }  # fmt: skip
    with (tmp_path / "grpo_refinement.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    (tmp_path / "grpo_refinement.md").write_text("old table\n\n## Reading\n\nWhat it shows.\n")
    gr.main(["--report-only", "--out-dir", str(tmp_path)])
    text = (tmp_path / "grpo_refinement.md").read_text()
    assert "box segmenter, image feedback" in text and "| multi | 1 | 0 |" in text
    assert "old table" not in text and text.endswith("\n## Reading\n\nWhat it shows.\n")  # the reading is kept


def test_no_mask_arm_trains_with_answer_feedback_and_has_its_goal(tmp_path):
    from segzero_agents.presets import parse_args

    assert parse_args(_argv("no-mask", "--feedback", "text")).feedback == "answer"
    rows = []
    for arm, last in (("multi", 0.9), ("no-mask", 0.8)):
        for step in (0, 10):
            rows.append({
                "arm": arm, "seed": 0, "step": step, "step_s": 1.0, "giou_turn_1": 0.7, "giou_turn_2": last,
                "stop_rate": 0.0, "turns_used": 2.0, "command": "python x",
            })  # fmt: skip
    text = gr.report(rows, tmp_path, 2)
    assert "- multi last turn > no-mask last turn: 1 of 1 seeds (met)" in text
    assert "- multi last turn > ablation last turn: not measured (an arm not run)" in text
    assert "| no-mask | 0 | 0.700 | 0.800 |" in text


def test_start_from_reuses_a_saved_warm_start_or_says_what_is_missing(tmp_path):
    (tmp_path / "start_seed2").mkdir()
    (tmp_path / "start_seed2" / "config.json").write_text("{}")
    opts = gr.build_parser().parse_args(["--start-from", str(tmp_path)])
    assert gr.seed_start(2, opts, tmp_path / "unused") == tmp_path / "start_seed2"
    with pytest.raises(SystemExit, match="start_seed1 holds no saved policy"):
        gr.seed_start(1, opts, tmp_path / "unused")


def test_either_targets_cover_both_picks_and_both_turn_2_actions():
    from refinement_feedback_rule import object_boxes
    from segzero_agents.grpo import make_envs
    from segzero_agents.presets import parse_args
    from segzero_agents.warm_start import oracle_reply

    opts = gr.build_parser().parse_args(["--segmenter", "grabcut", "--level", "1", "--refine-targets", "either"])
    assert gr._setting(opts)["refine_targets"] == "either"
    args = parse_args(gr._preset_argv(0, opts))
    envs = make_envs(args, 16, 1, args.split, args.dataset, args.data_root, max_turns=2)
    try:
        dataset = envs.envs[0].unwrapped.dataset
        ids = list(dataset.sample_ids)[:16]
        samples = [dataset[dataset.index_of(i)] for i in ids]
        boxes = [object_boxes(s, 56) for s in samples]
        replies = [oracle_reply(target, None, 56) for target, _ in boxes]
        rng = np.random.default_rng(0)
        first, switch_to = gr.either_choices(dataset, ids, replies, 56, 0.0, rng)
        on_target = [f == r for f, r in zip(first, replies, strict=True)]
        assert 0 < sum(on_target) < 16  # both picks
        assert 0 < sum(s is None for s in switch_to) < 16  # both turn-2 actions
        for (target, others), picked_target, reply, switch in zip(boxes, on_target, first, switch_to, strict=True):
            picked = list(parse_reply(reply).objects[0].box)
            assert picked == (target if picked_target else others[0])  # level 1: one other object
            assert switch is None or switch == (others[0] if picked_target else target)
        images, prompts, targets = gr.refine_rows(envs, 0, ids, first, switch_to)
        assert len(targets) == 16
        _, info = envs.reset(seed=0, options={"sample_ids": ids})
        _, _, _, _, info = envs.step(first)
        iou_1 = np.asarray(info["iou"], float)
        _, _, _, _, info = envs.step(targets)
        iou_2 = np.asarray(info["iou"], float)
        kept = np.array([s is None for s in switch_to])
        np.testing.assert_allclose(iou_2[kept], iou_1[kept], atol=1e-6)  # restating gains nothing
        to_target = np.array([s is not None and not t for s, t in zip(switch_to, on_target, strict=True)])
        assert to_target.any() and (iou_2[to_target] > iou_1[to_target]).all()  # switching to the target gains
    finally:
        envs.close()
    one_object = gr.build_parser().parse_args(["--level", "0"])
    envs = make_envs(parse_args(gr._preset_argv(0, one_object)), 1, 1, "train", None, None, max_turns=2)
    try:
        dataset = envs.envs[0].unwrapped.dataset
        ids = list(dataset.sample_ids)[:1]
        with pytest.raises(ValueError, match="needs --level 1"):
            gr.either_choices(dataset, ids, ["x"], 56, 0.0, np.random.default_rng(0))
    finally:
        envs.close()


def test_keep_policy_copies_the_last_checkpointed_policy(tmp_path):
    from segzero_agents.checkpointing import checkpoint_path

    policy = checkpoint_path(tmp_path / "run", 7) / "policy"
    policy.mkdir(parents=True)
    (policy / "config.json").write_text("{}")
    gr.keep_policy(tmp_path / "run", 7, tmp_path / "kept")
    assert (tmp_path / "kept" / "config.json").read_text() == "{}"
    gr.keep_policy(tmp_path / "run", 8, tmp_path / "none")  # no checkpoint of that step (TRL's arm): nothing
    assert not (tmp_path / "none").exists()
    assert gr.build_parser().parse_args(["--keep-policies"]).keep_policies

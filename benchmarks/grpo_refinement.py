r"""Does GRPO on refinement episodes teach the policy to correct itself from its own mask? A benchmark.

Three policies get the same budget (the ``tiny-learn`` preset: the tiny Qwen2.5-VL after the same
supervised warm start, the same prompts in the same order, group size, learning rate and number of
steps) and are evaluated the same way: greedy ``K``-turn episodes on the first ``--eval-samples``
samples of the held-out ``val`` split, gIoU (LISA) after turn 1 and after the last turn.

- ``single``: trained on single-turn episodes (the agent as it was); evaluated with ``--feedback``.
- ``multi``: trained on ``K``-turn episodes with ``--feedback`` (``image``: the previous mask shaded
  into the image; ``text``: the env's feedback text, the mask's bounding box and coarse map;
  ``text-iou``: that text plus the mask's IoU, which LEAKS the ground truth: a study setting that asks
  whether the trainer learns to act on feedback that says how good the mask is), trajectory-level
  GRPO over the env's gain rewards.
- ``ablation``: the same, with the feedback removed (the trainer's ``--feedback none``): on later turns
  the policy sees the turn-1 image and prompt again, so it cannot know what its mask was. The trainer
  evaluates with its training feedback, so this arm is evaluated without feedback too.
- ``no-mask`` (only with ``--arms ... no-mask``): the ablation of the mask alone: on later turns the
  policy gets the env's turn prompt with its previous answer and no word of the mask (the trainer's
  ``--feedback answer``), so it knows a correction is asked for and what it answered. ``multi``
  beating it is what shows that the mask, not the second turn, is what helps.
- ``trl`` (only with ``--arms trl``): the multi policy's trajectory-level GRPO through TRL's
  ``GRPOTrainer`` and its ``rollout_func``, each trajectory flattened into one completion with text
  feedback (``trl_refinement.py`` says what TRL cannot express). Evaluated the same flattened way.

``--segmenter`` (``box`` by default, the preset's) is every arm's segmenter, in training, evaluation
and the warm start. With ``box`` the mask is the predicted box, so the feedback holds nothing a second
turn could use (``benchmarks/refinement_feedback_rule.py``); ``grabcut`` masks follow the object.

``--level`` (the preset's 0 by default) is the shapes level of the warm start, training and
evaluation: level 1 puts a second object in every scene.

``--warm-start-refine`` also trains turn-2 replies in the warm start: for half of each batch's samples
an env with ``max_turns=2`` (text feedback; with the IoU line under ``--feedback text-iou``, so turn 2's
prompt is the one the arms will see) is stepped with the turn-1 oracle replies, and the policy
learns to answer the env's turn-2 prompt (:func:`refine_rows`) by restating its current box as a
refinement (:func:`restate_reply`). Restating gains exactly nothing, so the warm start teaches only the
turn-2 grammar, not the correction: whatever the multi policy gains on turn 2 comes from GRPO.
A restating turn 2 seldom samples anything else, though, so GRPO has little to choose between.
``--refine-targets either`` (levels 1-3) makes the warm start show both actions instead: each turn-2
row's turn 1 answers the target or another object by a fair coin, and its turn-2 target restates that
box or switches to the other pick by a second, independent coin (:func:`either_choices`). The warm
start then teaches that a turn 2 may switch, never when: whether the policy learns to switch on a bad
mask and keep a good one is left to GRPO, and the ablation (no feedback) shows what the feedback adds.
``--refine-targets mask`` (any level) shows the two level-0 actions the same way: by a fair coin a
turn-2 target restates the current box or restates the turn-1 MASK's bounding box grown by
:data:`MASK_MARGIN` px (what the text feedback's "within bbox [...]" line says, the rule of
``refinement_feedback_rule.py``). The warm start teaches that turn 2 may copy the mask's box, never
when: whether the policy learns to copy it where it beats its own box is left to GRPO.

The multi-turn arms write about ``K`` times as many reply tokens per step as ``single``: the budget
is the same in samples and steps, not in compute (seconds per step are in the table).

Outputs in ``--out-dir``: ``grpo_refinement.csv`` (one row per evaluation), ``grpo_refinement.md``
(the table, the verdicts, seconds per step, the command), ``grpo_refinement.png`` (curves) and each
run's training metrics, ``metrics_<arm>_seed<seed>.jsonl``.
``--verdict-samples N`` (with ``--keep-policies``, or later with ``--report-only`` on such a run's
folder) re-evaluates each arm's final policy on the first ``N`` val samples and gives the per-seed
figures and the goals on them too (``refinement_verdicts.py``): 32 samples seldom order arms that lie
within 0.01 of each other.
``--report-only`` rebuilds the table and figure from the CSV. ``--start-from DIR`` starts each seed from
``DIR/start_seed<seed>`` (an earlier run's ``--keep-policies`` folder) instead of a new warm start: give
the options that built it, as nothing saved with it records them.

Usage::

    python benchmarks/grpo_refinement.py --seeds 0 1 2 --steps 200 --warm-start-steps 1000 \
        --eval-every 50 --eval-samples 32                       # the committed table, ~25 min a seed
    python benchmarks/grpo_refinement.py --seeds 0 --steps 4 --eval-samples 8 --out-dir /tmp/gr   # smoke run
    python benchmarks/grpo_refinement.py --seeds 0 --steps 100 --warm-start-steps 1000 --eval-every 25 \
        --eval-samples 32 --segmenter grabcut --feedback text --warm-start-refine   # text feedback on grabcut
    python benchmarks/grpo_refinement.py --seeds 0 1 2 --arms no-mask --steps 100 --warm-start-steps 1000 \
        --eval-every 25 --eval-samples 32 --segmenter grabcut --feedback answer --warm-start-refine  # the mask ablation
    python benchmarks/grpo_refinement.py --seeds 0 --arms trl --steps 100 --warm-start-steps 1000 \
        --eval-every 25 --eval-samples 32 --segmenter grabcut --feedback text --warm-start-refine   # TRL's
    python benchmarks/grpo_refinement.py --seeds 0 1 2 --steps 100 --warm-start-steps 1000 --eval-every 25 \
        --eval-samples 32 --segmenter grabcut --feedback text --warm-start-refine --turn-advantage immediate \
        --level 1                                                # two objects a scene
    python benchmarks/grpo_refinement.py --seeds 0 1 2 --arms multi single --steps 100 --warm-start-steps 1000 \
        --eval-every 25 --eval-samples 32 --segmenter grabcut --feedback text-iou --warm-start-refine \
        --turn-advantage immediate --level 1                     # the feedback states the IoU (leaks it)
    python benchmarks/grpo_refinement.py --seeds 0 1 --arms multi ablation single --steps 100 \
        --warm-start-steps 1000 --eval-every 25 --eval-samples 32 --segmenter grabcut --feedback text-iou \
        --warm-start-refine --refine-targets either --turn-advantage immediate --level 1   # both turn-2 actions
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the TRL arm's modules sit beside this one

ARMS: dict[str, dict[str, Any]] = {
    "single": {"max_turns": 1, "feedback": None},
    "multi": {"max_turns": None, "feedback": None},
    "ablation": {"max_turns": None, "feedback": "none"},
    "no-mask": {"max_turns": None, "feedback": "answer"},
    "trl": {"max_turns": None, "feedback": "text"},
}
"""Training settings of each policy (``None``: the benchmark's ``--turns`` / ``--feedback``)."""

DEFAULT_ARMS = ("single", "multi", "ablation")
"""The arms run unless ``--arms`` says otherwise (``trl`` is the optional TRL comparison)."""

MASK_MARGIN = 4
"""``--refine-targets mask``: px the mask's bounding box is grown by (the rule's best margin with GrabCut)."""

REFINE_TARGETS_WORDS = {
    "either": " (either object on turn 1, restate or switch on turn 2)",
    "mask": " (turn 2 restates its box or the mask's, by a coin)",
}
"""What the setting line adds for each ``--refine-targets`` other than ``restate``."""

REFINE_SHARE = 0.5
"""``--warm-start-refine``: the share of each warm-start batch's samples that also get a turn-2 row."""


def _preset_argv(seed: int, opts: argparse.Namespace) -> list[str]:
    argv = ["--preset", "tiny-learn", "--seed", str(seed), "--learning-rate", str(opts.learning_rate)]
    if opts.warm_start_steps is not None:
        argv += ["--warm-start-steps", str(opts.warm_start_steps)]
    if opts.warm_start_jitter is not None:
        argv += ["--warm-start-jitter", str(opts.warm_start_jitter)]
    if opts.segmenter is not None:
        argv += ["--segmenter", opts.segmenter]
    if opts.level is not None:
        argv += ["--dataset-kwargs", json.dumps({"level": opts.level})]
    return argv


def restate_reply(box: Any) -> str:
    r"""A turn-2 reply that keeps the current box: a refinement with no click (it gains nothing).

    >>> restate_reply([25.0, 10, 46, 43])
    '<think>the target</think>\n<answer>{"bbox": [25, 10, 46, 43], "positive_points": []}</answer>'
    """
    from segzero_env.answers import format_refinement

    return format_refinement(box=[round(float(v)) for v in box], think="the target")


def refine_rows(
    envs: Any,
    seed: int,
    sample_ids: list[str],
    replies: list[str],
    switch_to: list[Any] | None = None,
    to_mask: list[bool] | None = None,
) -> tuple[list[Any], list[str], list[str]]:
    """Turn-2 warm-start rows: what the trainer shows on turn 2 with text feedback, and their targets.

    ``envs`` (``max_turns=2``, one sub-env per sample) is reset on ``sample_ids`` and stepped with the
    turn-1 ``replies``; the images and prompts are :func:`~segzero_agents.multiturn_rollout.turn_inputs`'
    (the env's ``info["prompt"]``, with its feedback text), the targets :func:`restate_reply` of each
    current box, or of ``switch_to[i]`` where that is not ``None``, or, where ``to_mask[i]``, of the
    turn-1 mask's bounding box grown by :data:`MASK_MARGIN` (the current box if the mask is empty). The
    mask is read from each episode's state, not the observation: under ``--feedback answer`` the prompt
    never shows it, yet the targets are the ones a mask-feedback warm start would get (the no-mask
    ablation differs from it in what the policy is shown, not in what it is taught).
    """
    from refinement_feedback_rule import mask_box
    from segzero_agents.multiturn_rollout import turn_inputs

    from segzero_env.parsing import parse_reply

    obs, info = envs.reset(seed=seed, options={"sample_ids": sample_ids})
    first_prompts = [str(p) for p in info["prompt"]]
    obs, _, terminated, truncated, info = envs.step(replies)
    rows = [i for i in range(len(replies)) if not (terminated[i] or truncated[i])]
    images, prompts = turn_inputs(obs, info, first_prompts, rows, "text", int(envs.envs[0].max_turns))
    switch_to = switch_to or [None] * len(replies)
    to_mask = to_mask or [False] * len(replies)
    side = int(envs.envs[0].unwrapped.image_size)
    targets = []
    for i in rows:
        mask = envs.envs[i].unwrapped.turn_state.mask_obs if to_mask[i] else None
        box = mask_box(mask, MASK_MARGIN, side) if mask is not None else None
        targets.append(restate_reply(box or switch_to[i] or parse_reply(replies[i]).objects[0].box))
    return images, prompts, targets


def either_choices(
    dataset: Any, sample_ids: list[str], replies: list[str], image_size: int, jitter: float, rng: np.random.Generator
) -> tuple[list[str], list[list[int] | None]]:
    """Turn-1 replies and turn-2 boxes for ``--refine-targets either``: both actions, no rule.

    Each sample's turn-1 reply is its target reply from ``replies`` or, by a fair coin, an oracle reply on
    another object of the scene (the same jitter); a second, independent coin makes its turn-2 target
    restate that box (``None``) or switch to the other pick's exact box. Nothing ties the switch to the
    feedback: turn 2 learns both actions, and only GRPO can learn when each one pays.
    """
    from refinement_feedback_rule import object_boxes
    from segzero_agents.warm_start import oracle_reply

    first: list[str] = []
    switch_to: list[list[int] | None] = []
    for sample_id, reply in zip(sample_ids, replies, strict=True):
        target, others = object_boxes(dataset[dataset.index_of(sample_id)], image_size)
        other = others[int(rng.integers(len(others)))]
        on_target = bool(rng.random() < 0.5)
        first.append(reply if on_target else oracle_reply(other, None, image_size, jitter, rng))
        switch_to.append((other if on_target else target) if rng.random() < 0.5 else None)
    return first, switch_to


def refine_feedback_args(args: Any, feedback: str) -> Any:
    """The trainer arguments the warm start's turn-2 envs are made with.

    Text feedback, as the arms see it: with the IoU line under ``--feedback text-iou`` (an env whose
    text lacked it would train turn 2 on prompts the arms never show), without the mask under
    ``--feedback answer`` (the warm start of a ``no-mask`` run), the mask's text otherwise.
    """
    from segzero_agents.multiturn_rollout import ENV_FEEDBACK

    return replace(args, feedback=feedback if feedback in ENV_FEEDBACK else "text")


def warm_started_policy(seed: int, opts: argparse.Namespace, folder: Path) -> Path:
    """The preset's supervised warm start, run once per seed and saved: every policy of the seed starts from it.

    The steps are the trainer's own (its sample schedule with ``seed + 1``, the jitter generator seeded
    with ``[seed, 0]``), so the start is the one ``train`` would build; saving it spares each arm the
    warm start. With ``--warm-start-refine`` the first :data:`REFINE_SHARE` of each batch's samples also
    give a turn-2 row (:func:`refine_rows`, after the batch's turn-1 rows, which stay the ones above).
    """
    from accelerate import Accelerator
    from segzero_agents.grpo import make_envs, policy_from_args, scheduled_sample_ids, seed_everything
    from segzero_agents.presets import parse_args
    from segzero_agents.warm_start import oracle_reply, warm_start

    args = parse_args(_preset_argv(seed, opts))
    seed_everything(args.seed)
    accelerator = Accelerator(cpu=True)
    bundle = policy_from_args(args, accelerator.device)
    g = args.group_size
    envs = make_envs(args, args.prompts_per_step * g, g, args.split, args.dataset, args.data_root)
    all_ids = list(envs.envs[0].dataset.sample_ids)
    jitter_rng = np.random.default_rng([args.seed, 0])
    n_refine = max(1, round(REFINE_SHARE * args.prompts_per_step))
    refine_envs = None
    either_rng = np.random.default_rng([args.seed, 1])  # its own stream: the restate warm start is unchanged
    if opts.warm_start_refine:
        shown = refine_feedback_args(args, opts.feedback)
        refine_envs = make_envs(shown, n_refine, 1, args.split, args.dataset, args.data_root, max_turns=2)
    batches = []
    for k in range(args.warm_start_steps):
        ids = scheduled_sample_ids(all_ids, k, args.prompts_per_step, 0, 1, args.seed + 1)
        obs, info = envs.reset(seed=args.seed, options={"sample_ids": ids})
        replies = [
            oracle_reply(info["gt_box"][i], info["gt_points"][i], args.image_size, args.warm_start_jitter, jitter_rng)
            for i in range(0, len(info["gt_box"]), g)
        ]
        images, prompts = list(obs["image"][::g]), list(info["prompt"][::g])
        if refine_envs is not None:
            first, switch_to, to_mask = replies[:n_refine], None, None
            if opts.refine_targets == "mask":
                to_mask = [bool(c) for c in either_rng.random(n_refine) < 0.5]
            elif opts.refine_targets == "either":
                dataset, jitter = refine_envs.envs[0].unwrapped.dataset, args.warm_start_jitter
                first, switch_to = either_choices(dataset, ids[:n_refine], first, args.image_size, jitter, either_rng)
            more = refine_rows(refine_envs, args.seed, ids[:n_refine], first, switch_to, to_mask)
            images, prompts, replies = images + more[0], prompts + more[1], replies + more[2]
        batches.append((images, prompts, replies))
    losses = warm_start(accelerator, bundle.model, bundle.processor, batches, args.warm_start_lr)
    print(f"[seed {seed}] warm start NLL {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} steps", flush=True)
    envs.close()
    if refine_envs is not None:
        refine_envs.close()
    bundle.model.save_pretrained(folder)
    bundle.processor.save_pretrained(folder)
    return folder


def seed_start(seed: int, opts: argparse.Namespace, folder: Path) -> Path:
    """The policy each arm of ``seed`` starts from: ``--start-from``'s saved one, else a new warm start."""
    if opts.start_from is None:
        return warm_started_policy(seed, opts, folder)
    start = Path(opts.start_from) / f"start_seed{seed}"
    if not (start / "config.json").is_file():
        raise SystemExit(
            f"--start-from {opts.start_from}: {start} holds no saved policy (config.json); give the policies "
            "folder of a run made with --keep-policies and these --seeds, or leave --start-from out"
        )
    return start


def arm_argv(arm: str, seed: int, opts: argparse.Namespace, output_dir: str, start: Path) -> list[str]:
    """The trainer's command line for one policy, started from ``start``."""
    settings = ARMS[arm]
    turns = settings["max_turns"] or opts.turns
    feedback = settings["feedback"] or opts.feedback
    return [
        *_preset_argv(seed, opts), "--model-name-or-path", str(start), "--warm-start-steps", "0",
        "--steps", str(opts.steps),
        "--eval-every", str(opts.eval_every), "--eval-samples", str(opts.eval_samples),
        "--output-dir", output_dir, "--log-replies-every", "0", "--save-every", "0",
        "--max-turns", str(turns), "--eval-max-turns", str(opts.turns), "--feedback", feedback,
        "--turn-advantage", opts.turn_advantage,
    ]  # fmt: skip


def keep_policy(output_dir: Path, steps: int, folder: Path) -> None:
    """Copy the trainer's last checkpointed policy (after ``steps`` steps) to ``folder``; TRL's arm has none."""
    from segzero_agents.checkpointing import checkpoint_path

    policy = checkpoint_path(output_dir, steps) / "policy"
    if policy.is_dir():
        shutil.copytree(policy, folder, dirs_exist_ok=True)


def run_arm(
    arm: str, seed: int, opts: argparse.Namespace, output_dir: str, start: Path, keep_metrics: Path | None = None
) -> list[dict[str, Any]]:
    """Train one policy from ``start``; return its evaluation records (step 0 and every ``--eval-every`` steps).

    ``keep_metrics``: where to copy the run's ``metrics.jsonl`` (every step's training metrics).
    """
    from segzero_agents.grpo import train
    from segzero_agents.presets import parse_args

    args = parse_args(arm_argv(arm, seed, opts, output_dir, start))
    if arm == "trl":
        from trl_refinement import run_trl_refinement

        records = run_trl_refinement(args, str(start), opts.eval_every)
        metrics = "".join(json.dumps(r) + "\n" for r in records)
    else:
        train(args)
        metrics = (Path(output_dir) / "metrics.jsonl").read_text()
    if keep_metrics is not None:
        keep_metrics.write_text(metrics)
    records = [json.loads(line) for line in metrics.splitlines()]
    step_s = [r["time/step_s"] for r in records if "time/step_s" in r]
    rows = []
    for r in records:
        if "eval/giou" not in r:
            continue
        row = {"arm": arm, "seed": seed, "step": r["step"], "step_s": float(np.mean(step_s)) if step_s else 0.0}
        row.update(_setting(opts))
        if arm == "trl":
            row["turn_advantage"] = "trajectory"  # one scalar advantage per completion
        for k in range(opts.turns):
            row[f"giou_turn_{k + 1}"] = r[f"eval/giou_turn_{k + 1}"]
        row.update(
            giou_last=r["eval/giou"], stop_rate=r["eval/stop_rate"], turns_used=r["eval/turns_used"],
            unusable_rate=r["eval/unusable_rate"],
        )  # fmt: skip
        rows.append(row)
    return rows


TEXT_COLUMNS = ("arm", "command", "segmenter", "feedback", "turn_advantage", "refine_targets")
DEFAULT_SETTING = {
    "segmenter": "box", "feedback": "image", "warm_start_refine": 0, "turn_advantage": "trajectory", "level": 0,
    "refine_targets": "restate",
}  # fmt: skip
"""The setting of rows from CSVs written before these columns existed."""


def _setting(opts: argparse.Namespace) -> dict[str, Any]:
    return {
        "segmenter": opts.segmenter or DEFAULT_SETTING["segmenter"],
        "feedback": opts.feedback,
        "warm_start_refine": int(opts.warm_start_refine),
        "turn_advantage": opts.turn_advantage,
        "level": DEFAULT_SETTING["level"] if opts.level is None else opts.level,
        "refine_targets": opts.refine_targets,
    }


def _distinct(rows: list[dict[str, Any]], key: str, cast: Any = str) -> str:
    """The distinct values of a setting over the rows, sorted and joined (the default where a row lacks it).

    >>> _distinct([{"level": 1.0}, {}], "level", int)
    '0 / 1'
    """
    values = sorted({cast(r.get(key, DEFAULT_SETTING[key])) for r in rows}) or [DEFAULT_SETTING[key]]
    return " / ".join(str(v) for v in values)


def describe_setting(rows: list[dict[str, Any]]) -> str:
    """The segmenter / feedback / warm-start / advantage part of the report's description line.

    >>> row = {"segmenter": "grabcut", "feedback": "text", "warm_start_refine": 1, "turn_advantage": "immediate"}
    >>> describe_setting([row]).split(", ")[-2:]
    ['turn-1 + turn-2 warm start', 'immediate advantages']
    """
    parts = [f"{_distinct(rows, 'segmenter')} segmenter", f"{_distinct(rows, 'feedback')} feedback"]
    parts[1] += " (multi training, single/multi evaluation)"
    refine = sorted({int(r.get("warm_start_refine", 0)) for r in rows}) or [0]
    warm = {(0,): "turn-1 warm start", (1,): "turn-1 + turn-2 warm start"}.get(tuple(refine), "mixed warm starts")
    if refine == [1]:
        warm += REFINE_TARGETS_WORDS.get(_distinct(rows, "refine_targets"), "")
    parts.append(warm)
    parts.append(f"{_distinct(rows, 'turn_advantage')} advantages")
    return ", ".join(parts)


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def final_rows(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Each arm's and seed's last evaluation row (the same row objects), by arm, then seed."""
    final: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        by_seed = final.setdefault(row["arm"], {})
        if row["seed"] not in by_seed or row["step"] > by_seed[row["seed"]]["step"]:
            by_seed[row["seed"]] = row
    return final


def report(rows: list[dict[str, Any]], out_dir: Path, turns: int) -> str:
    """Write ``grpo_refinement.md`` and ``.png`` from the evaluation rows; return the markdown."""
    last = f"giou_turn_{turns}"
    final = final_rows(rows)
    start: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        if row["step"] == 0:
            start.setdefault(row["arm"], {})[row["seed"]] = row
    lines = [
        "# GRPO on refinement episodes: held-out gIoU after turn 1 and after the last turn",
        "",
        "Commands (each run's, from the CSV):",
        "",
        *sorted({f"    {r['command']}" for r in rows}),
        "",
        f"Tiny Qwen2.5-VL (`tiny-learn` preset: shapes level {_distinct(rows, 'level', int)}, 56 px as one image "
        f"token, 16 prompts a step, {describe_setting(rows)}), K = {turns} turns at "
        "evaluation, greedy replies on the first val samples. Mean ± sd over seeds; `start` is the "
        "warm-started policy before any GRPO step, shared by the arms of one command (a `--feedback answer` "
        "command's warm start trains turn 2 on its own prompts). Seconds per step were measured on a shared "
        "2-core machine with other jobs running: compare them only as ratios.",
        "",
        "| policy | seeds | steps | start turn 1 | start last turn | turn 1 | last turn | last - turn 1 | s/step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        if arm not in final:
            continue
        ends = list(final[arm].values())
        begins = list(start.get(arm, {}).values())
        gains = [r[last] - r["giou_turn_1"] for r in ends]
        lines.append(
            f"| {arm} | {len(ends)} | {ends[0]['step']} | {_mean_sd([r['giou_turn_1'] for r in begins])} | "
            f"{_mean_sd([r[last] for r in begins])} | {_mean_sd([r['giou_turn_1'] for r in ends])} | "
            f"{_mean_sd([r[last] for r in ends])} | {_mean_sd(gains)} | {np.mean([r['step_s'] for r in ends]):.2f} |"
        )
    lines += ["", "Per seed (after the last step):", ""]
    lines += ["| policy | seed | turn 1 | last turn | stop rate | turns used |", "|---|---|---|---|---|---|"]
    for arm in ARMS:
        for seed, r in sorted(final.get(arm, {}).items()):
            lines.append(
                f"| {arm} | {seed} | {r['giou_turn_1']:.3f} | {r[last]:.3f} | {r['stop_rate']:.2f} | "
                f"{r['turns_used']:.2f} |"
            )
    lines += ["", "Goals (checked per seed present for both policies):", ""]
    lines += goal_lines(final, "giou_turn_1", last)
    lines += verdict_section(final)
    if "trl" in final:
        lines += ["", "TRL (trajectory-level GRPO through TRL's `rollout_func`, the history flattened):"]
        wins, n = _wins(final, "trl", last, "trl", "giou_turn_1")
        lines.append(f"- trl last turn > trl turn 1: {wins} of {n} seeds")
        lines += trl_comparison(rows, final["trl"], last)
    markdown = "\n".join(lines) + "\n"
    path = out_dir / "grpo_refinement.md"
    kept = path.read_text().partition(READING)[2] if path.exists() else ""
    path.write_text(markdown + (f"\n{READING}{kept}" if kept else ""))
    _plot(rows, out_dir / "grpo_refinement.png", turns)
    return markdown


READING = "## Reading"
"""The heading of a hand-written reading at the end of a report: rebuilding the report keeps it."""


def _wins(final: dict[str, dict[int, dict[str, Any]]], a: str, key_a: str, b: str, key_b: str) -> tuple[int, int]:
    """Seeds where arm ``a``'s ``key_a`` beats arm ``b``'s ``key_b``, of the seeds both have figures for."""
    both = sorted(set(final.get(a, {})) & set(final.get(b, {})))
    seeds = [s for s in both if key_a in final[a][s] and key_b in final[b][s]]
    return sum(final[a][s][key_a] > final[b][s][key_b] for s in seeds), len(seeds)


def goal_lines(
    final: dict[str, dict[int, dict[str, Any]]], turn_1: str, last: str, missing: str = "an arm not run"
) -> list[str]:
    """The goals' verdict lines on the final rows' ``turn_1`` and ``last`` figures (``missing``: why none)."""
    lines = []
    for text, (a, ka, b, kb) in {
        "multi last turn > multi turn 1": ("multi", last, "multi", turn_1),
        "multi last turn > single turn 1": ("multi", last, "single", turn_1),
        "multi last turn > single last turn": ("multi", last, "single", last),
        "multi last turn > ablation last turn": ("multi", last, "ablation", last),
        "multi last turn > no-mask last turn": ("multi", last, "no-mask", last),
    }.items():
        wins, n = _wins(final, a, ka, b, kb)
        verdict = "met" if wins == n else "NOT met"
        lines.append(f"- {text}: {wins} of {n} seeds ({verdict})" if n else f"- {text}: not measured ({missing})")
    return lines


def verdict_section(final: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    """The per-seed table and goals on the ``--verdict-samples`` re-evaluations; none without them."""
    rows = [(arm, seed, r) for arm in ARMS for seed, r in sorted(final.get(arm, {}).items()) if "verdict_n" in r]
    if not rows:
        return []
    sizes = " / ".join(str(n) for n in sorted({int(r["verdict_n"]) for _, _, r in rows}))
    lines = ["", f"Verdicts on more samples: each final policy re-evaluated on the first {sizes} val samples", ""]
    lines += ["| policy | seed | turn 1 | last turn | last - turn 1 |", "|---|---|---|---|---|"]
    for arm, seed, r in rows:
        gain = r["verdict_last"] - r["verdict_turn_1"]
        lines.append(f"| {arm} | {seed} | {r['verdict_turn_1']:.3f} | {r['verdict_last']:.3f} | {gain:+.3f} |")
    return [*lines, "", *goal_lines(final, "verdict_turn_1", "verdict_last", "an arm not run or not re-evaluated")]


def trl_comparison(rows: list[dict[str, Any]], trl_final: dict[int, dict[str, Any]], last: str) -> list[str]:
    """Report lines comparing TRL's policy with the agent's multi policy after the same number of steps.

    For each seed, the TRL run's last evaluation is set against the multi run's evaluation at that step.

    >>> row = lambda arm, step, t1, t2: {"arm": arm, "seed": 0, "step": step, "giou_turn_1": t1, "giou_turn_2": t2}
    >>> rows = [row("multi", 50, 0.8, 0.92), row("multi", 100, 0.8, 0.95), row("trl", 50, 0.7, 0.94)]
    >>> for line in trl_comparison(rows, {0: rows[2]}, "giou_turn_2"):
    ...     print(line)
    - multi last turn > trl last turn at the TRL run's last step: 0 of 1 seeds
      - seed 0, step 50: multi 0.800 -> 0.920, trl 0.700 -> 0.940
    """
    by_step = {(r["arm"], r["seed"], r["step"]): r for r in rows}
    pairs = [
        (seed, by_step[("multi", seed, t["step"])], t)
        for seed, t in sorted(trl_final.items())
        if ("multi", seed, t["step"]) in by_step
    ]
    wins = sum(m[last] > t[last] for _, m, t in pairs)
    lines = [f"- multi last turn > trl last turn at the TRL run's last step: {wins} of {len(pairs)} seeds"]
    for seed, m, t in pairs:
        lines.append(
            f"  - seed {seed}, step {t['step']}: multi {m['giou_turn_1']:.3f} -> {m[last]:.3f}, "
            f"trl {t['giou_turn_1']:.3f} -> {t[last]:.3f}"
        )
    return lines


def _plot(rows: list[dict[str, Any]], path: Path, turns: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    panels = ((axes[0], "giou_turn_1", "after turn 1"), (axes[1], f"giou_turn_{turns}", "after last turn"))
    for ax, key, title in panels:
        for arm in ARMS:
            arm_rows = [r for r in rows if r["arm"] == arm]
            steps = sorted({r["step"] for r in arm_rows})
            if not steps:
                continue
            means = [np.mean([r[key] for r in arm_rows if r["step"] == s]) for s in steps]
            ax.plot(steps, means, marker="o", label=arm)
        ax.set_title(f"held-out gIoU {title}")
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("gIoU (mean over seeds)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """The script's command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), choices=list(ARMS))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--turns", type=int, default=2, help="K for the multi-turn arms and every evaluation.")
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--eval-samples", type=int, default=32)
    parser.add_argument("--turn-advantage", default="trajectory", choices=["trajectory", "per-turn", "immediate"])
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--warm-start-steps", type=int, default=400, help="None keeps the preset's.")
    parser.add_argument("--warm-start-jitter", type=float, default=0.1, help="None keeps the preset's.")
    parser.add_argument(
        "--segmenter", default=None, choices=["box", "grabcut"], help="Every arm's segmenter (default: the preset's)."
    )
    parser.add_argument(
        "--feedback", default="image", choices=["image", "text", "text-iou", "answer"],
        help="The multi arm's training feedback and the single and multi arms' evaluation feedback; with "
        "--warm-start-refine, the turn-2 prompts of the warm start (answer: a no-mask run's own warm start).",
    )  # fmt: skip
    parser.add_argument(
        "--level", type=int, default=None, choices=[0, 1, 2, 3], help="Shapes level (default: the preset's, 0)."
    )
    parser.add_argument(
        "--warm-start-refine", action="store_true", help="The warm start also trains turn-2 (restating) replies."
    )
    parser.add_argument(
        "--refine-targets", default="restate", choices=["restate", "either", "mask"],
        help="With --warm-start-refine: turn 2 restates the target (restate) or, by coins, turn 1 answers either "
        "object and turn 2 restates or switches (either; levels 1-3), or turn 2 restates its box or the mask's "
        "grown box (mask).",
    )  # fmt: skip
    parser.add_argument(
        "--keep-policies", action="store_true",
        help="Save each seed's warm start and each arm's final policy under OUT_DIR/policies.",
    )  # fmt: skip
    parser.add_argument(
        "--start-from", default=None, help="Folder holding start_seed<seed> warm starts (a --keep-policies folder)."
    )
    parser.add_argument("--out-dir", default="benchmarks/results")
    parser.add_argument("--report-only", action="store_true", help="Rebuild md/png from the CSV.")
    parser.add_argument("--merge", nargs="*", default=[], help="With --report-only: CSVs of other runs to add.")
    parser.add_argument("--resume", action="store_true", help="Keep the CSV's runs and train only the missing ones.")
    parser.add_argument(
        "--verdict-samples", type=int, default=0,
        help="Re-evaluate each saved final policy (--keep-policies) on this many val samples and give the goals "
        "on those figures too (refinement_verdicts.py); with --report-only, on an earlier run's policies.",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> None:
    opts = build_parser().parse_args(argv)
    out_dir = Path(opts.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "grpo_refinement.csv"
    command = "python benchmarks/grpo_refinement.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows: list[dict[str, Any]] = []
    sources = [Path(p) for p in opts.merge]
    if csv_path.exists() and (opts.report_only or opts.resume):
        sources.insert(0, csv_path)
    for source in sources:
        with source.open() as f:
            for r in csv.DictReader(f):
                r = {**r, **{k: v for k, v in DEFAULT_SETTING.items() if k not in r}}  # the CSV's order first
                row: dict[str, Any] = {k: (v if k in TEXT_COLUMNS else float(v)) for k, v in r.items() if v != ""}
                for key in ("seed", "step", "warm_start_refine", "level"):
                    row[key] = int(row[key])
                rows.append(row)
    if opts.merge:
        write_csv(rows, csv_path)
    if not opts.report_only:
        done = {(r["arm"], r["seed"]) for r in rows}
        for seed in opts.seeds:
            if all((arm, seed) in done for arm in opts.arms):
                continue
            start_dir = tempfile.TemporaryDirectory()
            start = seed_start(seed, opts, Path(start_dir.name))
            if opts.keep_policies:
                shutil.copytree(start, out_dir / "policies" / f"start_seed{seed}", dirs_exist_ok=True)
            for arm in opts.arms:
                if (arm, seed) in done:
                    continue
                t0 = time.perf_counter()
                with tempfile.TemporaryDirectory() as tmp:
                    new = run_arm(arm, seed, opts, tmp, start, out_dir / f"metrics_{arm}_seed{seed}.jsonl")
                    if opts.keep_policies:
                        keep_policy(Path(tmp), opts.steps, out_dir / "policies" / f"{arm}_seed{seed}")
                rows += [{**r, "command": command} for r in new]
                print(f"[{arm} seed {seed}] {time.perf_counter() - t0:.0f} s", flush=True)
                write_csv(rows, csv_path)
                report(rows, out_dir, opts.turns)
            start_dir.cleanup()
    if opts.verdict_samples:
        from refinement_verdicts import add_verdicts

        for line in add_verdicts(rows, opts, out_dir / "policies"):
            print(f"no verdict for {line}", flush=True)
        write_csv(rows, csv_path)
    print(report(rows, out_dir, opts.turns))


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Write the evaluation rows; columns are every row's keys in first-seen order (verdicts sit on final rows)."""
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()

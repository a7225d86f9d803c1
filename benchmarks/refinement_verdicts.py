"""Verdicts on more samples: each arm's final policy of ``grpo_refinement.py`` re-evaluated after training.

The training curve evaluates on ``--eval-samples`` held-out samples (32 in the committed runs), where
the arms of one seed often lie within 0.01 gIoU of each other: too few samples to order them. With
``--verdict-samples N`` (and ``--keep-policies``), each arm's final policy, saved as
``OUT_DIR/policies/<arm>_seed<seed>``, is evaluated once more the way the trainer evaluates (greedy
``K``-turn episodes with the arm's evaluation feedback, the first ``N`` samples of the ``val`` split,
in the trainer's evaluation envs) and the figures are kept in the final row's ``verdict_*`` columns. On the
training curve's own samples the figures equal the curve's last point (tested). The report then
also gives the goals on these figures.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

VERDICT_KEYS = ("verdict_n", "verdict_turn_1", "verdict_last")
"""The columns a re-evaluation adds to an arm's final row: samples, gIoU after turn 1 and the last turn."""


def evaluate_final_policy(
    arm: str, seed: int, opts: argparse.Namespace, policy: Path, samples: int
) -> dict[str, float]:
    """The :data:`VERDICT_KEYS` figures of the saved ``policy`` of ``arm`` / ``seed`` on ``samples`` samples."""
    import torch
    from grpo_refinement import arm_argv
    from segzero_agents.grpo import make_eval_envs, policy_from_args
    from segzero_agents.multiturn_rollout import evaluate_refinement
    from segzero_agents.presets import parse_args

    with tempfile.TemporaryDirectory() as unused:  # nothing is trained: the output folder stays empty
        args = parse_args([*arm_argv(arm, seed, opts, unused, policy), "--eval-samples", str(samples)])
    bundle = policy_from_args(args, torch.device("cpu"))
    envs = make_eval_envs(args, opts.turns)
    try:
        out = evaluate_refinement(bundle.model, bundle.processor, args, envs)
    finally:
        envs.close()
    return dict(zip(VERDICT_KEYS, (out["eval/n"], out["eval/giou_turn_1"], out["eval/giou"]), strict=True))


def add_verdicts(rows: list[dict[str, Any]], opts: argparse.Namespace, policies: Path) -> list[str]:
    """Re-evaluate every final policy saved under ``policies`` on ``opts.verdict_samples`` samples.

    The figures go into each (arm, seed)'s last row; rows that already hold figures on as many samples
    are left alone. Returns what was skipped and why (no saved policy: a run without ``--keep-policies``,
    or TRL's arm, which keeps none).
    """
    from grpo_refinement import final_rows

    skipped = []
    finals = [(a, s, r) for a, by_seed in final_rows(rows).items() for s, r in by_seed.items()]
    for arm, seed, row in sorted(finals, key=lambda final: final[:2]):  # (arm, seed) is unique: rows never compared
        if row.get("verdict_n") == float(opts.verdict_samples):
            continue
        policy = policies / f"{arm}_seed{seed}"
        if not (policy / "config.json").is_file():
            skipped.append(f"{arm} seed {seed}: no saved policy at {policy}")
            continue
        # the run's own setting (its CSV row), not this command's: a --report-only call need not restate it
        setting = {k: row[k] for k in ("segmenter", "feedback", "level") if k in row}
        run_opts = argparse.Namespace(**{**vars(opts), **setting})
        row.update(evaluate_final_policy(arm, seed, run_opts, policy, opts.verdict_samples))
        print(f"[verdict {arm} seed {seed}] {row['verdict_turn_1']:.3f} -> {row['verdict_last']:.3f}", flush=True)
    return skipped

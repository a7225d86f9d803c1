"""benchmarks/rl_algorithms.py: a learner trains and is scored, and runs of other seeds join a table."""

from __future__ import annotations

import csv

import pytest
from benchmark_scripts import load_benchmark

script = load_benchmark("rl_algorithms")


def test_the_table_script_trains_and_scores_the_blanked_query_attention_learner():
    args = script.Args(budget="tiny", steps=64, eval_episodes=4)
    rows = script.run_one(args, "PPO-Attn-blank", 1, 0)  # PPO-Attn's path plus the blanked query
    assert [r["steps"] for r in rows] == [0, 32, 64]  # a checkpoint before training and two along it
    assert rows[-1]["final"] == 1 and 0.0 <= rows[-1]["mean_iou"] <= 1.0
    assert rows[-1]["parse_failure_rate"] == 0.0  # the box action always writes a well-formed reply


def _write_table(path, seeds, steps):
    columns = ["algo", "level", "seed", "steps", "eval_episodes", "final", *script.FLOAT_COLUMNS]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for seed in seeds:
            row = {"algo": "PPO-Attn", "level": 1, "seed": seed, "steps": steps, "eval_episodes": 300, "final": 1}
            writer.writerow({**row, **{key: 0.5 for key in script.FLOAT_COLUMNS}})


def test_reuse_keeps_the_seeds_this_run_does_not_redo(tmp_path):
    path = tmp_path / "table.csv"
    _write_table(path, seeds=[0, 1], steps=30_000)
    args = script.parse_args(["--budget", "medium", "--seeds", "1", "--first-seed", "1"])
    kept, _ = script.read_reused(args, str(path), redone={("PPO-Attn", 1, 1)})
    assert [(r["algo"], r["seed"]) for r in kept] == [("PPO-Attn", 0)]


def test_reuse_refuses_a_run_of_another_budget_naming_the_file(tmp_path):
    path = tmp_path / "table.csv"
    _write_table(path, seeds=[0], steps=6_000)
    args = script.parse_args(["--budget", "medium"])
    with pytest.raises(ValueError, match="table.csv.*rerun it"):
        script.read_reused(args, str(path), redone=set())


def test_first_seed_must_not_be_negative():
    with pytest.raises(SystemExit):
        script.parse_args(["--first-seed", "-1"])

"""What the README, docs/agent.md and the benchmarks tell a user matches what the code does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym

import segzero_env  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def text(relative: str) -> str:
    """A file's text with whitespace runs folded to one space (docs wrap lines anywhere)."""
    return " ".join((ROOT / relative).read_text(encoding="utf-8").split())


def test_readme_states_the_shapes_default_level():
    readme = text("README.md")
    assert 'level 1 unless `dataset_kwargs={"level": N}`' in readme
    assert "for the synthetic set, which is level 1 by default" in readme
    assert gym.make("ReasonSegShapes-v0", segmenter="box").unwrapped.dataset.level == 1


def test_readme_cpu_install_takes_torch_from_the_cpu_index_before_anything_needs_it():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("pip install setuptools wheel") :]
    block = block[: block.index("```")]
    cpu_torch = block.index("pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu")
    sam2_requirement = re.search(r'"(sam2[^"]*)"', (ROOT / "pyproject.toml").read_text()).group(1)
    sam2 = block.index(f'SAM2_BUILD_CUDA=0 python -m pip install --no-build-isolation "{sam2_requirement}"')
    package = block.index('python -m pip install -e ".[all]"')
    assert cpu_torch < sam2 < package  # sam2 builds against the CPU torch; then nothing is left to fetch


def test_agent_doc_points_to_the_timing_metrics_the_trainer_logs():
    doc = text("docs/agent.md")
    trainer = (ROOT / "agents" / "grpo.py").read_text(encoding="utf-8")
    for name in ("time/rollout_s", "time/env_s", "time/update_s", "mean_step_s"):
        assert f"`{name}`" in doc and f'"{name}"' in trainer, name
    assert "0.17 s per GRPO step (" not in doc  # a figure from one run, no longer stated as the figure


def test_bench_env_prints_same_run_ratios_not_a_target():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_env.py"), "--replies", "300", "--episodes", "2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "target" not in out.lower()
    assert "x the time of parse alone (same run)" in out
    assert "replies are scored in the time of one box step (same run)" in out
    assert '"reward_cost_ratio"' in out and '"replies_per_grabcut_step"' in out


def test_bench_rewards_prints_each_runs_ratio_and_its_spread():
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_rewards.py"),
            "--runs",
            "2",
            "--replies",
            "60",
            "--rounds",
            "1",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert out.count("preset                   workload") == 2  # one table a run
    summary = out.split("ratio in each run (min / median / max):\n")[1].splitlines()
    figures = json.loads(summary.pop())  # the last line: the figures as JSON
    assert figures["runs"] == 2 and figures["disagreements"] == 0
    assert len(figures["seg-zero/mutated/ratios"]) == 2 and figures["seg-zero/mutated/median_ratio"] > 0
    rows = {line.split()[0]: line for line in summary}
    assert set(rows) == {f"{p}/{w}" for p in PRESET_ROWS for w in ("canonical", "mutated")}
    for line in rows.values():
        each, spread = line.split("   (")
        ratios = [float(r.rstrip("x,")) for r in each.split()[1:]]
        low, median, high = (float(v.strip("x")) for v in spread.rstrip(")").split(" / "))
        assert len(ratios) == 2 and (low, high) == (min(ratios), max(ratios))
        assert abs(median - sum(ratios) / 2) <= 0.0101  # the median of two, each figure printed rounded to 0.01


PRESET_ROWS = ("seg-zero", "seg-zero-robust", "vision-reasoner", "vision-reasoner-robust")


def test_readme_names_every_registered_policy_and_segmenter():
    from segzero_env.evaluation.cli_names import registered_names

    readme = text("README.md")
    names = registered_names()
    for name in names["policy"] + names["segmenter"]:
        assert f"`{name}`" in readme, name

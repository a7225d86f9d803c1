"""The GRPO trainer's data-parallel path, run for real: 2 CPU processes (gloo) under ``accelerate launch``.

``accelerate launch --cpu --num_processes 2`` starts ONE process (accelerate only spawns several CPU
processes through MPI), so the test uses the torchrun-style launcher (``--multi_gpu``) and the
``tiny-cpu`` preset's ``--device cpu``, which makes the two processes join one gloo process group.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from local_ports import free_port
from segzero_agents.grpo import scheduled_sample_ids
from segzero_agents.presets import PRESETS

from segzero_env.datasets import load

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
P = PRESETS["tiny-cpu"]["prompts_per_step"]
G = PRESETS["tiny-cpu"]["group_size"]
SEED = 42  # Args' default


def _launch(output_dir: Path, *extra: str) -> dict:
    """Run the trainer on 2 CPU processes; return the summary the main process prints last."""
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", str(WORLD), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        str(ROOT / "examples/train_grpo.py"),
        "--preset", "tiny-cpu", "--warm-start-steps", "60", "--warm-start-lr", "1e-2",
        "--steps", "2", "--save-every", "1", "--keep-last", "0", "--log-replies-every", "0",
        "--output-dir", str(output_dir), *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summaries = [line for line in proc.stdout.splitlines() if line.startswith('{"output_dir"')]
    assert len(summaries) == 1, proc.stdout  # printed by the main process only
    return json.loads(summaries[0])


def _records(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith(("time/", "memory/"))}
        for line in path.read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    return out, _launch(out)


def test_two_processes_draw_their_own_samples_and_log_all_of_them(run):
    out, summary = run
    assert summary["num_processes"] == WORLD
    records = _records(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    all_ids = list(load("shapes", split="train").sample_ids)
    for r in records:
        assert r["rollout/prompts"] == WORLD * P
        assert r["rollout/replies"] == WORLD * P * G
        expected = [
            sid for rank in range(WORLD) for sid in scheduled_sample_ids(all_ids, r["step"] - 1, P, rank, WORLD, SEED)
        ]
        assert r["sample_ids"] == expected
        assert len(set(r["sample_ids"])) == WORLD * P  # the processes trained on different prompts
    state = json.loads((out / "checkpoints/step_000002/trainer_state.json").read_text())
    assert state["num_processes"] == WORLD and state["samples_drawn"] == 2 * WORLD * P
    assert {p.name for p in (out / "checkpoints/step_000002/state").glob("random_states_*.pkl")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }


def test_replicas_stay_identical_after_updates(run):
    _, summary = run
    checksums = summary["param_checksums"]
    assert len(checksums) == WORLD
    assert checksums[0] == checksums[1]  # bit-identical replicas: gradients were averaged before each step


def test_resume_on_two_processes_equals_uninterrupted(run, tmp_path):
    out, summary = run
    part = tmp_path / "part"
    shutil.copytree(out, part)
    shutil.rmtree(part / "checkpoints/step_000002")  # as if stopped after step 1
    resumed = _launch(part, "--resume")
    assert _records(part / "metrics.jsonl") == _records(out / "metrics.jsonl")
    assert resumed["param_checksums"] == summary["param_checksums"]


def test_resume_with_another_process_count_says_what_to_do(run):
    from segzero_agents.checkpointing import load_checkpoint

    out, _ = run
    with pytest.raises(ValueError, match="--num_processes 2"):
        load_checkpoint(None, out / "checkpoints/step_000002", num_processes=1)  # refused before any loading


def test_processes_that_each_run_alone_are_refused(monkeypatch):
    from accelerate import Accelerator
    from segzero_agents.distributed import check_launch

    accelerator = Accelerator(cpu=True)  # no process group: a single-process run
    check_launch(accelerator)
    monkeypatch.setenv("WORLD_SIZE", "2")  # what a launcher sets when it started 2 processes
    with pytest.raises(RuntimeError, match="--device cpu"):
        check_launch(accelerator)

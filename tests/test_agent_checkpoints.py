"""GRPO run folders: one run per folder, resumes that keep their settings, damaged checkpoints passed over."""

import json
import shutil
import warnings
from dataclasses import asdict

import pytest
from accelerate import Accelerator
from segzero_agents.checkpointing import (
    CheckpointWarning,
    latest_checkpoint,
    read_checkpoint,
    resume_candidates,
)
from segzero_agents.grpo import train
from segzero_agents.metrics_logger import MetricsLogger
from segzero_agents.presets import parse_args
from segzero_agents.run_folder import RESUME_MAY_CHANGE, open_run_folder, prepare_output_dir

COMMON = [
    "--preset",
    "tiny-cpu",
    "--warm-start-steps",
    "0",
    "--group-size",
    "2",
    "--max-new-tokens",
    "12",
    "--save-every",
    "1",
    "--log-replies-every",
    "0",
]


def args_for(folder, *extra):
    return parse_args([*COMMON, "--steps", "3", "--output-dir", str(folder), *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 3-step run with a checkpoint after every step."""
    folder = tmp_path_factory.mktemp("grpo") / "run"
    train(args_for(folder))
    return folder


def copy_of(finished, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    return folder


def records(folder):
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not k.startswith(("time/", "memory/"))} for line in lines]


def test_checkpoints_record_their_file_sizes_and_are_written_whole(finished):
    state = read_checkpoint(finished / "checkpoints/step_000003")
    assert state["step"] == 3 and "state/model.safetensors" in state["files"]
    assert all(size > 0 for size in state["files"].values())
    leftovers = [p.name for p in (finished / "checkpoints").rglob(".*")]
    assert leftovers == []  # no hidden partial folder or temporary file survives a save


def test_a_fresh_run_refuses_a_folder_holding_another_run(finished, tmp_path):
    folder = copy_of(finished, tmp_path)
    refused = r"is not empty \(it holds checkpoints, metrics.jsonl.*--resume.*--overwrite"
    with pytest.raises(FileExistsError, match=refused):
        train(args_for(folder))
    assert [r["step"] for r in records(folder)] == [1, 2, 3]  # nothing was touched
    with pytest.raises(ValueError, match="pass one of them"):
        train(args_for(folder, "--resume", "--overwrite"))


def test_overwrite_deletes_the_old_runs_files_and_nothing_else(tmp_path):
    (tmp_path / "checkpoints/step_000007/state").mkdir(parents=True)
    (tmp_path / "checkpoints/step_000007/trainer_state.json").write_text('{"step": 7}')
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "metrics.jsonl").write_text('{"step": 7}\n')
    (tmp_path / "notes.txt").write_text("mine")
    prepare_output_dir(Accelerator(cpu=True), tmp_path, resume=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert latest_checkpoint(tmp_path) is None  # so a later --resume cannot reach the old weights


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--group-size", "3"], "group_size 2 -> 3"),
        (["--seed", "7"], "seed 42 -> 7"),
        (["--learning-rate", "0.5"], "learning_rate [0-9.e-]+ -> 0.5"),
    ],
)
def test_resume_refuses_changed_settings_and_names_the_allowed_ones(finished, flags, message):
    with pytest.raises(ValueError, match=rf"--resume: .*step_000003 was saved with other settings: {message}\. "):
        train(args_for(finished, "--resume", *flags))
    allowed = ["--steps", "5", "--eval-every", "2", "--save-every", "3", "--keep-last", "1", "--log-replies-every", "1"]
    candidates = open_run_folder(Accelerator(cpu=True), asdict(args_for(finished, "--resume", *allowed)))
    assert candidates[0][0].name == "step_000003"
    assert {"steps", "eval_every", "save_every", "keep_last", "output_dir"} <= RESUME_MAY_CHANGE


def test_truncated_weights_are_found_from_the_recorded_sizes(finished, tmp_path):
    folder = copy_of(finished, tmp_path)
    weights = folder / "checkpoints/step_000003/state/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.warns(CheckpointWarning, match=r"step_000003: state/model.safetensors is 1000 bytes, \d+ were written"):
        candidates = resume_candidates(folder)
    assert [p.name for p, _ in candidates] == ["step_000002", "step_000001"]
    (folder / "checkpoints/.partial-step_000004/state").mkdir(parents=True)  # a save killed half-way
    assert latest_checkpoint(folder).name == "step_000002"


def test_a_torn_line_inside_metrics_is_refused_not_guessed(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not a metrics record"):
        MetricsLogger(tmp_path, resume_step=3)


def test_resume_passes_over_damaged_checkpoints_and_a_torn_metrics_line(finished, tmp_path):
    folder = copy_of(finished, tmp_path)
    # step 3: trainer_state.json cut short (was: a bare JSONDecodeError)
    state_file = folder / "checkpoints/step_000003/trainer_state.json"
    state_file.write_text(state_file.read_text()[:40])
    # step 2: weights cut short in a checkpoint that records no sizes (as older ones did): found on loading
    state_file = folder / "checkpoints/step_000002/trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["files"]
    state_file.write_text(json.dumps(state))
    weights = folder / "checkpoints/step_000002/state/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    # metrics: the line of step 3 torn by the kill
    metrics = folder / "metrics.jsonl"
    metrics.write_text(metrics.read_text()[:-40])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(args_for(folder, "--resume"))
    messages = [str(w.message) for w in caught if issubclass(w.category, (CheckpointWarning, UserWarning))]
    assert any("step_000003: trainer_state.json does not parse" in m for m in messages)
    assert any("passes over" in m and "step_000002, which does not load" in m for m in messages)
    assert any("dropping the torn last line" in m for m in messages)
    # resumed from step 1 and ran steps 2 and 3 again, exactly as the first time
    assert records(folder) == records(finished)
    assert read_checkpoint(folder / "checkpoints/step_000003")["step"] == 3
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
        "damaged-step_000002",
        "damaged-step_000003",
        "step_000001",
        "step_000002",
        "step_000003",
    ]

"""Checkpoints that let ``--resume`` continue a run as if it had never stopped.

A checkpoint folder ``OUTPUT/checkpoints/step_000010/`` holds:

- ``state/``: ``accelerator.save_state``: model weights, optimizer, LR scheduler and every process's
  RNG states (python, numpy, torch, CUDA). Accelerate knows how to save and restore these under
  DDP, DeepSpeed ZeRO and FSDP alike, which is why it is used instead of hand-written files.
- ``trainer_state.json``: the step just finished and the sample cursor (how many prompts have been
  drawn), the run's arguments, and ``files``: the size of every other file of the checkpoint.
- ``policy/``: the policy ready for inference with ``from_pretrained``: the LoRA adapter alone, or the
  full model, plus the processor.

Writing is atomic: everything goes to a hidden ``.partial-step_000010/`` folder, ``trainer_state.json``
last (through a temporary file and ``os.replace``), and the folder is renamed into place only
then. A save killed half-way leaves only the hidden folder, which is never read.

Reading checks before it trusts: a checkpoint whose ``trainer_state.json`` does not parse, or
whose files are missing or not the size recorded (truncated weights), is DAMAGED.
:func:`resume_candidates` passes over damaged checkpoints with a :class:`CheckpointWarning` and
offers the complete ones, newest first; :func:`restore` falls back the same way when loading
itself fails, then renames the checkpoints it passed over to ``damaged-step_*`` (kept for
inspection, never read again; the run saves those steps anew).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
_STEP_NAME = re.compile(r"step_(\d+)")
_PARTIAL_PREFIX = ".partial-"


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was passed over; the run resumes from an older one."""


def checkpoint_path(output_dir: str | Path, step: int) -> Path:
    """Folder of the checkpoint taken after ``step`` steps."""
    return Path(output_dir) / CHECKPOINT_DIR / f"step_{step:06d}"


def _checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Checkpoint folders (those named ``step_<digits>``), highest step first."""
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]), reverse=True)


def write_json_atomic(path: str | Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` through a temporary file and ``os.replace``: never half a file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as f:
        f.write(json.dumps(value, indent=2, default=str))
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def _file_sizes(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != STATE_FILE
    }


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint's trainer state after checking every recorded file is there at its size.

    Raises:
        ValueError: The checkpoint is damaged; the message says how.
    """
    path = Path(path)
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: {STATE_FILE} is missing (an interrupted save)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {STATE_FILE} does not parse ({exc})") from exc
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise ValueError(f"{path}: {STATE_FILE} has no step")
    for name, size in (state.get("files") or {}).items():
        file = path / name
        if not file.is_file():
            raise ValueError(f"{path}: {name} is missing")
        if file.stat().st_size != size:
            raise ValueError(f"{path}: {name} is {file.stat().st_size} bytes, {size} were written")
    return state


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete, undamaged checkpoint with the highest step, or ``None``."""
    for path in _checkpoint_dirs(output_dir):
        try:
            read_checkpoint(path)
        except ValueError:
            continue
        return path
    return None


def resume_candidates(output_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Undamaged checkpoints with their trainer states, newest first; warns about each damaged newer one.

    Raises:
        FileNotFoundError: There is no undamaged checkpoint; the message lists what was found.
    """
    candidates, damaged = [], []
    for path in _checkpoint_dirs(output_dir):
        try:
            candidates.append((path, read_checkpoint(path)))
        except ValueError as exc:
            damaged.append(str(exc))
            if not candidates:
                warnings.warn(f"--resume passes over a damaged checkpoint: {exc}", CheckpointWarning, stacklevel=2)
    if not candidates:
        found = f" (damaged: {'; '.join(damaged)})" if damaged else ""
        raise FileNotFoundError(
            f"--resume: no complete checkpoint under {Path(output_dir) / CHECKPOINT_DIR}{found}; "
            "drop --resume (with --overwrite) to start fresh"
        )
    return candidates


def save_checkpoint(
    accelerator: Any,
    model: Any,
    processor: Any,
    output_dir: str | Path,
    step: int,
    trainer_state: dict[str, Any],
    keep_last: int | None = None,
) -> Path:
    """Save everything needed to resume after ``step`` steps; returns the checkpoint folder.

    The checkpoint is written under a hidden name and renamed into place once complete, with
    ``trainer_state.json`` (holding the size of every other file) written last.
    """
    path = checkpoint_path(output_dir, step)
    partial = path.with_name(_PARTIAL_PREFIX + path.name)
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)  # a save killed earlier
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial / "state"))
    # every process takes part: under ZeRO-3 and FSDP this gathers the sharded weights (a
    # main-process-only call would wait forever for the others); with DDP it is a plain state_dict
    state_dict = accelerator.get_state_dict(model)
    accelerator.wait_for_everyone()  # every process's random states are written
    if accelerator.is_main_process:
        policy = accelerator.unwrap_model(model)
        policy.save_pretrained(str(partial / "policy"), state_dict=state_dict)
        processor.save_pretrained(str(partial / "policy"))
        write_json_atomic(partial / STATE_FILE, {"step": step, **trainer_state, "files": _file_sizes(partial)})
        if path.exists():  # a damaged checkpoint of this step, passed over when the run resumed
            shutil.rmtree(path)
        os.replace(partial, path)
        if keep_last:
            _prune(Path(output_dir), keep_last)
    accelerator.wait_for_everyone()
    return path


def load_checkpoint(accelerator: Any, path: str | Path, num_processes: int | None = None) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG states from ``path``; return its trainer state.

    Args:
        accelerator: The run's accelerator (every process calls this).
        path: A checkpoint folder.
        num_processes: This run's process count; when given, it must equal the saving run's, because
            each process resumes its own sample schedule and RNG states.

    Raises:
        ValueError: If the checkpoint is damaged (see :func:`read_checkpoint`), or ``num_processes``
            differs from the count recorded in it.
    """
    path = Path(path)
    state = read_checkpoint(path)
    saved = state.get("num_processes")
    if num_processes is not None and saved is not None and int(saved) != num_processes:
        raise ValueError(
            f"checkpoint {path} was written by {saved} processes but this run has {num_processes}: resume with "
            f"--num_processes {saved} (each process continues its own samples and random state)"
        )
    accelerator.load_state(str(path / "state"))
    return state


def restore(accelerator: Any, candidates: Sequence[tuple[Path, dict[str, Any]]], num_processes: int) -> dict[str, Any]:
    """Load the newest of ``candidates`` (from :func:`resume_candidates`) that loads; return its trainer state.

    A checkpoint whose files pass the size check but still fail to load is passed over with a
    :class:`CheckpointWarning`; the next one then overwrites whatever it had restored.

    Raises:
        ValueError: Another process count (never passed over: every checkpoint of the run has it).
        RuntimeError: None of the candidates loads.
    """
    failures = []
    for path, state in candidates:
        saved = state.get("num_processes")
        if saved is not None and int(saved) != num_processes:
            return load_checkpoint(accelerator, path, num_processes)  # raises, saying what to do
        try:
            accelerator.load_state(str(path / "state"))
        except Exception as exc:  # noqa: BLE001 - torch, safetensors and pickle each fail their own way
            failures.append(f"{path}: {type(exc).__name__}: {exc}")
            warnings.warn(f"--resume passes over {path}, which does not load ({exc})", CheckpointWarning, stacklevel=2)
            continue
        _set_aside_newer(accelerator, path)
        return state
    raise RuntimeError("--resume: no checkpoint loads: " + "; ".join(failures))


def _set_aside_newer(accelerator: Any, resumed: Path) -> None:
    """Rename checkpoints newer than ``resumed`` (the damaged ones passed over) to ``damaged-step_*``.

    They are kept for inspection, but no later resume or pruning counts them; the run saves
    those steps again.
    """
    accelerator.wait_for_everyone()  # every process has loaded before anything is renamed
    if accelerator.is_main_process:
        step = int(resumed.name.split("_")[1])
        for path in _checkpoint_dirs(resumed.parent.parent):
            if int(path.name.split("_")[1]) > step:
                target = path.with_name(f"damaged-{path.name}")
                k = 1
                while target.exists():
                    k += 1
                    target = path.with_name(f"damaged-{k}-{path.name}")
                os.replace(path, target)
    accelerator.wait_for_everyone()


def _prune(output_dir: Path, keep_last: int) -> None:
    for old in _checkpoint_dirs(output_dir)[keep_last:]:
        shutil.rmtree(old, ignore_errors=True)

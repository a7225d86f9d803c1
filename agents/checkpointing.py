"""Checkpoints that let ``--resume`` continue a run as if it had never stopped.

A checkpoint folder ``OUTPUT/checkpoints/step_000010/`` holds:

- ``state/``: ``accelerator.save_state``: model weights, optimizer, LR scheduler and every process's
  RNG states (python, numpy, torch, CUDA). Accelerate knows how to save and restore these under
  DDP, DeepSpeed ZeRO and FSDP alike, which is why it is used instead of hand-written files.
- ``trainer_state.json``: the step just finished and the sample cursor (how many prompts have been
  drawn), plus the run's arguments for reference.
- ``policy/``: the policy ready for inference with ``from_pretrained``: the LoRA adapter alone, or the
  full model, plus the processor.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"


def checkpoint_path(output_dir: str | Path, step: int) -> Path:
    """Folder of the checkpoint taken after ``step`` steps."""
    return Path(output_dir) / CHECKPOINT_DIR / f"step_{step:06d}"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step, or ``None`` (half-written ones are skipped)."""
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step_*") if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("_")[1]), default=None)


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

    ``trainer_state.json`` is written last, so a folder without it is an interrupted save that
    :func:`latest_checkpoint` ignores.
    """
    path = checkpoint_path(output_dir, step)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(path / "state"))
    # every process takes part: under ZeRO-3 and FSDP this gathers the sharded weights (a
    # main-process-only call would wait forever for the others); with DDP it is a plain state_dict
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        policy = accelerator.unwrap_model(model)
        policy.save_pretrained(str(path / "policy"), state_dict=state_dict)
        processor.save_pretrained(str(path / "policy"))
        (path / STATE_FILE).write_text(json.dumps({"step": step, **trainer_state}, indent=2, default=str))
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
        ValueError: If ``num_processes`` differs from the count recorded in the checkpoint.
    """
    path = Path(path)
    state = json.loads((path / STATE_FILE).read_text())
    saved = state.get("num_processes")
    if num_processes is not None and saved is not None and int(saved) != num_processes:
        raise ValueError(
            f"checkpoint {path} was written by {saved} processes but this run has {num_processes}: resume with "
            f"--num_processes {saved} (each process continues its own samples and random state)"
        )
    accelerator.load_state(str(path / "state"))
    return state


def _prune(output_dir: Path, keep_last: int) -> None:
    root = output_dir / CHECKPOINT_DIR
    done = sorted((p for p in root.glob("step_*") if (p / STATE_FILE).is_file()), key=lambda p: p.name)
    for old in done[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)

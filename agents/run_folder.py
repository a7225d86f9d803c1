"""One run per folder: a fresh run refuses a folder holding another, and ``--resume`` refuses changed settings.

A fresh run into a folder that holds an old run would rewrite ``metrics.jsonl`` and leave the old
checkpoints, so a later ``--resume`` would continue from the OLD weights. :func:`prepare_output_dir`
refuses a non-empty folder unless the run resumes, or ``--overwrite`` asks to delete the old
run's files first.

A resumed run restores the optimizer, scheduler and random states of the checkpoint, so settings
that shape them (group size, seed, learning rate, ...) cannot change on the way:
:func:`check_resume_args` refuses every difference except :data:`RESUME_MAY_CHANGE`.

>>> check_resume_args({"seed": 1, "steps": 10}, {"seed": 1, "steps": 20}, "ckpt")
>>> check_resume_args({"seed": 1, "learning_rate": 1e-06}, {"seed": 2, "learning_rate": 1e-05}, "ckpt")
Traceback (most recent call last):
...
ValueError: --resume: ckpt was saved with other settings: learning_rate 1e-06 -> 1e-05, seed 1 -> 2. ...
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segzero_agents.checkpointing import CHECKPOINT_DIR, resume_candidates
from segzero_agents.metrics_logger import METRICS_FILE

RUN_FILES = (CHECKPOINT_DIR, METRICS_FILE, "tensorboard")
"""What a run writes in its folder; ``--overwrite`` deletes these and nothing else."""

RESUME_MAY_CHANGE = frozenset(
    {
        # where and how long: the folder may have moved, and a run may be extended
        "output_dir",
        "resume",
        "overwrite",
        "steps",
        # where it runs: not part of the training state
        "device",
        "torch_threads",
        # what is logged, evaluated and kept
        "log_replies_every",
        "eval_every",
        "eval_dataset",
        "eval_data_root",
        "eval_split",
        "eval_samples",
        "save_every",
        "keep_last",
    }
)
"""Arguments a resumed run may change; every other one must equal the checkpoint's."""


def prepare_output_dir(accelerator: Any, output_dir: str | Path, resume: bool, overwrite: bool) -> None:
    """Make sure this run is the only one writing ``output_dir``; every process calls this before writing.

    Args:
        accelerator: The run's accelerator (only the main process deletes; all wait for it).
        output_dir: The run folder.
        resume: The run continues the one in the folder.
        overwrite: Delete the old run's :data:`RUN_FILES` first (other files are left alone).

    Raises:
        ValueError: ``resume`` and ``overwrite`` are both set.
        FileExistsError: The folder is not empty and neither flag is set.
    """
    path = Path(output_dir)
    if resume and overwrite:
        raise ValueError("--resume continues the run in the folder and --overwrite deletes it: pass one of them")
    held = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if held and not resume and not overwrite:
        shown = ", ".join(held[:6]) + (f" and {len(held) - 6} more" if len(held) > 6 else "")
        raise FileExistsError(
            f"{path} is not empty (it holds {shown}): pass --resume to continue the run there, "
            "--overwrite to delete its checkpoints, metrics and TensorBoard logs and start again, "
            "or choose another --output-dir"
        )
    accelerator.wait_for_everyone()  # every process has looked before anything is deleted
    if overwrite and accelerator.is_main_process:
        for name in RUN_FILES:
            target = path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    accelerator.wait_for_everyone()


def check_resume_args(saved: Mapping[str, Any], current: Mapping[str, Any], checkpoint: str | Path) -> None:
    """Refuse to resume when an argument outside :data:`RESUME_MAY_CHANGE` differs from the checkpoint's.

    Both mappings are the JSON form of the run's ``Args`` (``trainer_state.json["args"]``).
    Arguments only one side knows (added or removed since the checkpoint) are not compared.

    Raises:
        ValueError: Naming every differing argument with both values, and the ones that may change.
    """
    current = json.loads(json.dumps(dict(current), default=str))  # the form trainer_state.json holds
    changed = sorted(
        name for name in saved.keys() & current.keys() if name not in RESUME_MAY_CHANGE and saved[name] != current[name]
    )
    if changed:
        listed = ", ".join(f"{name} {saved[name]!r} -> {current[name]!r}" for name in changed)
        raise ValueError(
            f"--resume: {checkpoint} was saved with other settings: {listed}. The restored optimizer, "
            "scheduler and random states belong to those; resume with the saved values, or start a new "
            "run (another --output-dir, or --overwrite). Only these may change on resume: "
            + ", ".join(sorted(RESUME_MAY_CHANGE))
        )


def open_run_folder(accelerator: Any, args: Mapping[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    """Check the run folder before anything is loaded or written; return the checkpoints to resume from.

    Args:
        accelerator: The run's accelerator (every process calls this).
        args: The run's arguments (``asdict(Args)``): ``output_dir``, ``resume``, ``overwrite`` and the
            settings compared with the checkpoint's.

    Returns:
        ``(folder, trainer state)`` of the undamaged checkpoints, newest first (empty for a fresh run).

    Raises:
        FileExistsError, ValueError, FileNotFoundError: See :func:`prepare_output_dir`,
            :func:`check_resume_args` and :func:`~segzero_agents.checkpointing.resume_candidates`.
    """
    prepare_output_dir(accelerator, args["output_dir"], bool(args["resume"]), bool(args.get("overwrite")))
    if not args["resume"]:
        return []
    candidates = resume_candidates(args["output_dir"])
    path, state = candidates[0]
    check_resume_args(state.get("args") or {}, args, path)
    return candidates

"""An evaluation's output folder: one writer at a time, and a resume only onto the same settings.

Two runs writing to one folder would interleave their lines in ``results.jsonl`` and leave one
policy's score under the other's name, so a run holds an exclusive lock on ``DIR/run.lock`` from
its first check to its last write. The lock is an ``flock`` on the open file: the operating system
drops it when the process ends, however it ends (a killed run never leaves a stale lock).

``run.json`` records the settings. A resume compares them with the new ones after filling in
every default (``image_size=840`` spelled out equals leaving it out), leaves secrets out, and is
refused when results exist but ``run.json`` does not.
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from segzero_env.evaluation.results import RESULTS_FILE, RUN_FILE
from segzero_env.redaction import without_secrets

LOCK_FILE = "run.lock"
RUN_KEYS_MUST_MATCH = ("env_id", "env_kwargs", "policy", "policy_kwargs", "metric_definition", "seed")
"""Settings a resumed run must share with the run it continues (``limit`` and ``batch_size`` may change)."""


class RunConflictError(ValueError):
    """The output folder is in use by another run, or holds a run this one may not continue."""


def jsonable(value: Any) -> Any:
    """Return a JSON-safe stand-in for a setting (objects such as segmenter instances become their type)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        if isinstance(value, Mapping):
            return {str(k): jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [jsonable(v) for v in value]
        return f"<{type(value).__module__}.{type(value).__qualname__}>"


@contextmanager
def lock_run_folder(folder: str | Path) -> Iterator[Path]:
    """Hold the folder's exclusive lock for the ``with`` block (no-op where ``fcntl`` is missing).

    Raises:
        RunConflictError: Another process (or another run in this one) holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock
        yield Path(folder)
        return
    folder = Path(folder)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise RunConflictError(
            f"{folder} is being written by another run ({holder}); wait for it to finish, or give this run "
            "another --out folder"
        ) from None
    except OSError as err:  # a file system without locks (some network mounts): run unguarded
        os.close(fd)
        warnings.warn(f"cannot lock {folder} ({err}); nothing stops a second run from writing there too", stacklevel=3)
        yield folder
        return
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield folder
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _class_defaults(cls: Any) -> dict[str, Any]:
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def resolved_env_kwargs(env_id: str, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The env's keyword arguments with the registered ones and the constructor's defaults filled in."""
    from gymnasium.envs.registration import load_env_creator, registry

    spec = registry.get(str(env_id).partition(":")[2] or str(env_id))
    if spec is None:
        return dict(env_kwargs)
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    return {**_class_defaults(creator), **spec.kwargs, **env_kwargs}


def resolved_policy_kwargs(policy: Any, policy_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The policy's constructor arguments with its defaults filled in (given ones for unknown policies)."""
    from segzero_env.policies.base import _REGISTRY
    from segzero_env.trust import resolve

    cls = policy
    if isinstance(policy, str):
        try:
            cls = resolve("policy", policy, _REGISTRY)
        except ValueError:
            return dict(policy_kwargs)  # the policy itself will report it when built
    elif not isinstance(policy, type):
        return dict(policy_kwargs)
    return {**_class_defaults(cls), **policy_kwargs}


def _comparable(run: Mapping[str, Any], policy: Any) -> dict[str, Any]:
    """The settings of a run record as they take effect: defaults filled in, secrets left out."""
    out = dict(run)
    out["env_kwargs"] = resolved_env_kwargs(run.get("env_id", ""), run.get("env_kwargs") or {})
    out["policy_kwargs"] = resolved_policy_kwargs(policy, run.get("policy_kwargs") or {})
    return without_secrets(jsonable(out))


def _differences(key: str, was: Any, now: Any) -> list[str]:
    if isinstance(was, dict) and isinstance(now, dict):
        return [
            f"{key}.{k}: was {was.get(k, '(unset)')!r}, now {now.get(k, '(unset)')!r}"
            for k in sorted(set(was) | set(now))
            if was.get(k, "(unset)") != now.get(k, "(unset)")
        ]
    return [f"{key}: was {was!r}, now {now!r}"] if was != now else []


def check_resume(folder: str | Path, run: Mapping[str, Any], resume: bool, policy: Any) -> None:
    """Refuse to continue a run in ``folder`` whose settings differ from ``run``, or cannot be read.

    Args:
        folder: The output folder.
        run: The new run's record (what ``run.json`` will hold).
        resume: Whether the caller asked to resume; nothing is checked otherwise.
        policy: The policy as given (name, class or object), to look up its defaults.

    Raises:
        RunConflictError: Results exist without ``run.json``, or the settings differ.
    """
    folder = Path(folder)
    path = folder / RUN_FILE
    if not resume:
        return
    if not path.exists():
        results = folder / RESULTS_FILE
        if results.exists() and results.stat().st_size > 0:
            raise RunConflictError(
                f"--resume on {folder}: {RESULTS_FILE} is there but {RUN_FILE} is missing, so the earlier run's "
                f"settings cannot be checked; restore {RUN_FILE}, or start a new run in another --out folder"
            )
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunConflictError(
            f"--resume on {folder}: {path} cannot be read ({err}); restore it, or start a new run in another --out"
        ) from err
    # the policy's defaults come from the policy given now, never from a name read out of run.json
    was, now = _comparable(previous, policy), _comparable(run, policy)
    diffs = [line for key in RUN_KEYS_MUST_MATCH for line in _differences(key, was.get(key), now.get(key))]
    if diffs:
        raise RunConflictError(
            f"--resume on {folder} with different settings ({'; '.join(diffs)}); "
            "rerun with the original settings or write to another --out folder"
        )

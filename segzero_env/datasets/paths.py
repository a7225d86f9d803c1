"""Where the real datasets live when no folder is given.

The data folder is ``$SEGZERO_DATA_DIR`` when that variable is set, else
``~/.cache/segzero_env/data``. Each source looks for its own sub-folder there:

| dataset | sub-folders tried, in order |
|---|---|
| ``reasonseg`` | ``reasonseg``, ``ReasonSeg`` (holding ``train/``, ``val/``, ``test/``) |
| ``refcoco``, ``refcoco+``, ``refcocog`` | ``refer``, then the data folder itself (with ``refcoco*/``, ``images/``) |
| ``grefcoco`` | ``grefcoco``, ``refer``, then the data folder itself (with ``grefcoco/``, ``images/``) |
| ``reasonseg-hf`` | ``ReasonSeg_<split>``, ``reasonseg_hf/<split>`` |
| ``segzero-train`` | ``refCOCOg_9k_840``, ``segzero_train`` |

Point a loader at the data in one of three ways: ``load(name, root="/path")`` (or
``gym.make(id, data_root="/path")``), ``export SEGZERO_DATA_DIR=/path``, or put (or link) the
folder under ``~/.cache/segzero_env/data``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from segzero_env.datasets.errors import DatasetError

DATA_DIR_ENV = "SEGZERO_DATA_DIR"
"""Environment variable naming the data folder."""

DEFAULT_DATA_DIR = Path("~/.cache/segzero_env/data")
"""Data folder used when ``SEGZERO_DATA_DIR`` is unset (``~`` expanded at use)."""


def data_dir() -> Path:
    """Return the data folder: ``$SEGZERO_DATA_DIR``, else ``~/.cache/segzero_env/data``."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else DEFAULT_DATA_DIR.expanduser()


def resolve_root(
    root: str | os.PathLike[str] | None,
    dataset: str,
    subfolders: Sequence[str],
    looks_right: Callable[[Path], bool] = Path.is_dir,
) -> Path:
    """Find the folder holding ``dataset``.

    Args:
        root: Folder given by the caller; used as is when given (it must exist).
        dataset: Dataset name, for the error message.
        subfolders: Names tried under :func:`data_dir` when ``root`` is ``None``; ``""`` means
            the data folder itself.
        looks_right: Whether a candidate folder holds the dataset.

    Raises:
        DatasetError: ``root`` does not exist, or no candidate holds the data; the message lists
            every place looked and how to point at the data.
    """
    if root is not None:
        path = Path(root).expanduser()
        if not path.exists():
            raise DatasetError(path, f"{dataset} data folder does not exist", "check the root / data_root given")
        return path
    base = data_dir()
    tried = [base / sub if sub else base for sub in subfolders]
    for candidate in tried:
        if candidate.is_dir() and looks_right(candidate):
            return candidate
    raise DatasetError(
        base,
        f"no {dataset} data found; looked in: " + ", ".join(str(p) for p in tried),
        f"pass root=... (gym.make(..., data_root=...)), set {DATA_DIR_ENV}, or put the data in one of those folders",
    )

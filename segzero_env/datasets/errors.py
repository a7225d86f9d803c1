"""Bad data: the error every loader raises, the one warning ``strict=False`` gives, and the file readers.

Every problem with a dataset on disk becomes a :class:`DatasetError` that names the file, says
what is wrong with it, and says what to do. With ``strict=False`` a loader collects the problems
it can see while building its index in a :class:`SkipLog`, drops those samples, and warns ONCE
with their count.

>>> err = DatasetError("/data/val/a.json", "does not parse as JSON", "fix or delete the file")
>>> str(err)
'/data/val/a.json: does not parse as JSON; fix or delete the file'
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

SKIP_HINT = "pass strict=False to skip such samples, or run 'segzero data check <path> --dataset NAME' to list them"


class DatasetError(ValueError):
    """A dataset file is missing or malformed.

    Attributes:
        path: The file or folder at fault.
        problem: What is wrong with it.
        fix: What the user can do about it.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}" + (f"; {fix}" if fix else ""))


class DatasetWarning(UserWarning):
    """Samples were skipped because their data is bad (``strict=False``)."""


@dataclass
class SkipLog:
    """Problems met while indexing with ``strict=False``: one entry per skipped sample.

    Attributes:
        source: Dataset name and split, used in the warning (``"reasonseg val"``).
        strict: Raise the first problem instead of recording it.
        problems: ``(path, problem)`` pairs, in the order met.
    """

    source: str
    strict: bool = True
    problems: list[tuple[str, str]] = field(default_factory=list)

    def record(self, error: DatasetError) -> None:
        """Raise ``error`` when strict, else remember it."""
        if self.strict:
            raise error
        self.problems.append((error.path, error.problem))

    def warn_once(self, kept: int) -> None:
        """Emit the single warning that counts the skipped samples (nothing when none were skipped)."""
        if not self.problems:
            return
        path, problem = self.problems[0]
        n = len(self.problems)
        warnings.warn(
            f"{self.source}: skipped {n} of {n + kept} samples with bad data (first: {path}: {problem}); "
            "run 'segzero data check' to list them all, or pass strict=True to stop at the first",
            DatasetWarning,
            stacklevel=3,
        )


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file as UTF-8, retrying as cp1252 (some annotation tools wrote Windows text).

    Raises:
        DatasetError: The file cannot be read or does not parse.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DatasetError(path, f"cannot be read ({exc.strerror or exc})", "check the file exists") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise DatasetError(path, "is neither UTF-8 nor cp1252 text", "re-save it as UTF-8") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            path, f"does not parse as JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", "fix or remove the file"
        ) from exc


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to ``H x W x 3`` uint8 RGB.

    OpenCV decodes it (applying the EXIF orientation), as the reference evaluation does, so masks
    drawn in that frame line up.

    Raises:
        DatasetError: The file is missing, empty, or not a decodable image.
    """
    path = os.fspath(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(path, f"image cannot be read ({exc.strerror or exc})", "check the file exists") from exc
    if data.size == 0:
        raise DatasetError(path, "image file is empty", "re-download or remove it")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(path, "image does not decode (corrupt or not an image)", "re-download or remove it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects (unpickling, JSON).

    The objects built are acyclic and kept, so collection passes during the build find nothing;
    pausing them makes reading a RefCOCO refs file about 3x faster.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def key_error(sample_id: str, source: str) -> KeyError:
    """Build the ``KeyError`` that ``index_of`` raises for an unknown id."""
    return KeyError(f"sample id {sample_id!r} is not in {source}")

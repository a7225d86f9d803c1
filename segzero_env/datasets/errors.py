"""Bad data: the error every loader raises, the one warning ``strict=False`` gives, and the JSON reader.

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


class DegeneratePolygonWarning(UserWarning):
    """A 2-point polygon was drawn as LISA's rasteriser draws it: a line (outline plus fill)."""


class DatasetEncodingWarning(UserWarning):
    """Annotation files are not UTF-8 and were read as cp1252 (their text may be wrong)."""


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


def read_json_with_encoding(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """Read a JSON file as UTF-8, retrying as cp1252 (some annotation tools wrote Windows text).

    Returns:
        The parsed value and the encoding that read it (``"utf-8"`` or ``"cp1252"``): a caller
        warns about cp1252 files, whose text may have been meant as something else.

    Raises:
        DatasetError: The file cannot be read, does not parse, or nests too deeply to parse.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DatasetError(path, f"cannot be read ({exc.strerror or exc})", "check the file exists") from exc
    encoding = "utf-8"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        encoding = "cp1252"
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise DatasetError(path, "is neither UTF-8 nor cp1252 text", "re-save it as UTF-8") from exc
    try:
        return json.loads(text), encoding
    except json.JSONDecodeError as exc:
        raise DatasetError(
            path, f"does not parse as JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", "fix or remove the file"
        ) from exc
    except RecursionError as exc:
        raise DatasetError(path, "is nested too deeply to parse as JSON", "fix or remove the file") from exc


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file as :func:`read_json_with_encoding` does, without saying which encoding read it."""
    return read_json_with_encoding(path)[0]


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

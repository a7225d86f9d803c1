"""The results file of an evaluation: one JSON line per scored sample, appended and flushed at once.

The file is the run's single source of truth. Metrics are recomputed from it (per-sample
intersection and union included, so cIoU is exact), which is what makes ``--resume`` give the
same final numbers as an uninterrupted run: a resumed run reads the lines already written,
drops a last line cut short by a crash, and scores only the samples that have no line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

RESULTS_FILE = "results.jsonl"
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"


def _json_default(value: Any) -> Any:
    """Turn numpy scalars and arrays (and other stragglers) into JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def dumps(record: dict[str, Any]) -> str:
    """Serialise one record on one line (numpy values converted, non-ASCII kept)."""
    return json.dumps(record, ensure_ascii=False, default=_json_default, allow_nan=True)


def read_results(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """Read a results file, tolerating a last line cut short by a crash.

    Returns:
        ``(records, valid_bytes)``: the complete records in file order (for a sample written twice,
        only the first is kept) and the byte length of the complete part of the file.

    Raises:
        ValueError: A line before the last one is not a JSON object with a ``sample_id``; the file
            was edited or mixed with something else, and resuming on it could lose samples.
    """
    path = Path(path)
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    valid = 0
    offset = 0
    line_no = 0
    while offset < len(data):
        line_no += 1
        end = data.find(b"\n", offset)
        if end == -1:
            break  # an unterminated last line was being written when the run stopped
        line = data[offset:end]
        try:
            record = json.loads(line.decode("utf-8")) if line.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            if end + 1 >= len(data):
                break  # a torn final line: drop it, it will be scored again
            raise ValueError(f"{path}:{line_no}: not a JSON line ({err}); fix or remove the line, then resume") from err
        if record is not None:
            if not isinstance(record, dict) or "sample_id" not in record:
                raise ValueError(f"{path}:{line_no}: expected a JSON object with a 'sample_id'")
            if record["sample_id"] not in seen:
                seen.add(record["sample_id"])
                records.append(record)
        offset = end + 1
        valid = offset
    return records, valid


class ResultsWriter:
    """Append records to a results file, one flushed line each.

    Args:
        path: The results file.
        resume: Keep the complete lines already there (a torn last line is cut off); otherwise
            the file must be absent or empty.

    Attributes:
        existing: Records read from the file when resuming (empty otherwise).
    """

    def __init__(self, path: str | Path, resume: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.existing: list[dict[str, Any]] = []
        if resume:
            self.existing, valid = read_results(self.path)
            if self.path.exists() and self.path.stat().st_size != valid:
                with self.path.open("r+b") as handle:
                    handle.truncate(valid)
        elif self.path.exists() and self.path.stat().st_size > 0:
            raise FileExistsError(
                f"{self.path} already holds results; pass resume=True (--resume) to continue that run, "
                "or choose another output folder"
            )
        self._handle: TextIO | None = self.path.open("a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and flush it to the OS, so a killed process loses at most this line."""
        if self._handle is None:
            raise RuntimeError(f"results file {self.path} is closed")
        self._handle.write(dumps(record) + "\n")
        self._handle.flush()

    def sync(self) -> None:
        """Force written lines to disk (survives a machine crash, not only a process kill)."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Flush and close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_results(path: str | Path) -> Iterator[dict[str, Any]]:
    """Iterate the complete records of a results file."""
    records, _ = read_results(path)
    yield from records


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a JSON document atomically (temporary file, then rename), so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def by_index(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sort records by dataset index, so every sum runs in the same order however the run was split."""
    return sorted(records, key=lambda r: (r.get("index", 0), str(r["sample_id"])))

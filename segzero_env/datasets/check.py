"""``segzero data check <path> --dataset NAME``: validate a dataset folder and count what it holds.

Every sample of every split (or of the ``--split`` given) is decoded: images, masks, ground
truth. Bad samples are listed with the file and the problem, never raised, and counted as
skipped. The exit status is 0 when nothing was skipped, 1 when some samples were, 2 when the
folder cannot be read at all or a split holds no samples (the error shows the expected layout).

Example::

    $ segzero data check ~/data/reasonseg --dataset reasonseg --split val
    reasonseg val (/home/me/data/reasonseg/val)
      samples: 200 (short 62, long 138)
      with ignore regions: 9
      skipped: 0
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from segzero_env.datasets.errors import DatasetError
from segzero_env.datasets.layouts import empty_split_error

CHECKABLE = ("reasonseg", "reasonseg-hf", "refcoco", "refcoco+", "refcocog", "grefcoco", "segzero-train")


@dataclass
class CheckReport:
    """What one split holds.

    Attributes:
        dataset: Dataset name.
        split: Split name.
        source: Folder or table read.
        samples: Samples that decoded.
        short: Of those, short queries (ReasonSeg).
        long: Of those, long queries (ReasonSeg).
        with_ignore: Of those, samples whose mask has ignore (255) pixels.
        without_mask: Of those, samples with no mask (training set).
        cp1252: Annotation files read as cp1252 because they are not UTF-8 (ReasonSeg).
        problems: ``(path, problem)`` per skipped sample.
    """

    dataset: str
    split: str
    source: str = ""
    samples: int = 0
    short: int = 0
    long: int = 0
    with_ignore: int = 0
    without_mask: int = 0
    cp1252: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Number of samples skipped for bad data."""
        return len(self.problems)


def _splits_of(dataset: str, path: str) -> list[str]:
    if dataset == "reasonseg":
        from segzero_env.datasets.reasonseg import list_splits

        return list_splits(path)
    if dataset in ("refcoco", "refcoco+", "refcocog"):
        from segzero_env.datasets.refcoco import list_splits as list_refer_splits

        return list_refer_splits(path, dataset)
    if dataset == "grefcoco":
        from segzero_env.datasets.grefcoco import list_splits as list_grefcoco_splits

        return list_grefcoco_splits(path)
    from segzero_env.datasets.reasonseg_hf import list_hf_splits

    return list_hf_splits(path)


def check_split(dataset: str, path: str, split: str, limit: int | None = None, **kwargs: Any) -> CheckReport:
    """Decode every sample of one split (the first ``limit`` if given) and count.

    Raises:
        DatasetError: The split cannot be read at all (missing folder, unreadable index file).
    """
    from segzero_env.datasets import load

    with warnings.catch_warnings():
        # The problems are listed in the report; the loader's summary warning would repeat them.
        warnings.simplefilter("ignore")
        ds: Any = load(dataset, root=path, split=split, strict=False, **kwargs)
    skip_log = getattr(ds, "skip_log", None)
    report = CheckReport(dataset, split, str(getattr(ds, "folder", getattr(ds, "source", path))))
    report.problems.extend(skip_log.problems if skip_log is not None else [])
    report.cp1252 = len(getattr(ds, "cp1252_files", ()))
    count = len(ds) if limit is None else min(limit, len(ds))
    for i in range(count):
        try:
            sample = ds[i]
        except DatasetError as exc:
            report.problems.append((exc.path, exc.problem))
            continue
        except Exception as exc:  # noqa: BLE001 - a checker lists what it cannot read instead of stopping
            # Loaders turn bad data into DatasetError; anything else is a loader bug, reported as one.
            sample_id = ds.sample_ids[i] if hasattr(ds, "sample_ids") else str(i)
            problem = f"unexpected {type(exc).__name__} ({exc}); please report this loader bug"
            report.problems.append((f"sample {sample_id}", problem))
            continue
        report.samples += 1
        report.short += sample.query_kind == "short"
        report.long += sample.query_kind == "long"
        if sample.mask is None:
            report.without_mask += 1
        elif (sample.mask == 255).any():
            report.with_ignore += 1
    return report


def format_report(report: CheckReport, max_problems: int = 20) -> str:
    """Render a report as the lines the command prints."""
    kinds = f" (short {report.short}, long {report.long})" if report.short or report.long else ""
    lines = [
        f"{report.dataset} {report.split} ({report.source})",
        f"  samples: {report.samples}{kinds}",
        f"  with ignore regions: {report.with_ignore}",
    ]
    if report.without_mask:
        lines.append(f"  without masks: {report.without_mask}")
    if report.cp1252:
        lines.append(f"  read as cp1252 (not UTF-8): {report.cp1252}")
    lines.append(f"  skipped: {report.skipped}")
    lines += [f"    {path}: {problem}" for path, problem in report.problems[:max_problems]]
    if report.skipped > max_problems:
        lines.append(f"    ... and {report.skipped - max_problems} more")
    return "\n".join(lines)


def run_check(
    path: str,
    dataset: str,
    splits: list[str] | None = None,
    limit: int | None = None,
    max_problems: int = 20,
    out: TextIO | None = None,
) -> int:
    """Check ``splits`` (default: every split found) and print one report each; return the exit status."""
    out = out or sys.stdout
    try:
        chosen = splits or _splits_of(dataset, path)
        if not chosen:
            raise DatasetError(path, f"holds no {dataset} split", "is --dataset right?")
        reports = [check_split(dataset, path, split, limit) for split in chosen]
    except DatasetError as exc:
        print(f"error: {exc}", file=out)
        return 2
    for report in reports:
        print(format_report(report, max_problems), file=out)
    empty = [r for r in reports if r.samples == 0 and r.skipped == 0 and limit != 0]
    for report in empty:
        print(f"error: {empty_split_error(dataset, report.split, report.source)}", file=out)
    if empty:
        return 2
    total = sum(r.skipped for r in reports)
    return 1 if total else 0


def _handle(args: argparse.Namespace) -> int:
    return run_check(args.path, args.dataset, args.split, args.limit, args.max_problems)


def add_subparser(subparsers: Any) -> None:
    """Add ``segzero data check`` to the ``segzero`` command."""
    data = subparsers.add_parser("data", help="inspect real datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    check = data_sub.add_parser(
        "check",
        help="validate a dataset folder and print counts",
        description="Decode every sample; list bad files; print counts of samples, short / long queries, "
        "samples with ignore regions, skipped samples. Exit 0 if clean, 1 if samples were skipped, "
        "2 if the folder cannot be read or a split holds no samples.",
    )
    check.add_argument("path", help="dataset folder (or parquet file / hub id for the datasets copies)")
    check.add_argument("--dataset", required=True, choices=CHECKABLE, help="which format the folder holds")
    check.add_argument("--split", action="append", help="split to check (repeatable; default: every split found)")
    check.add_argument("--limit", type=int, default=None, help="check only the first N samples of each split")
    check.add_argument("--max-problems", type=int, default=20, help="problems listed per split (default 20)")
    check.set_defaults(func=_handle)
    data.set_defaults(func=_print_help(data))


def _print_help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(_: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show

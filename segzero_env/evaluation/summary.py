"""Metrics of an evaluation, recomputed from its per-sample records, and the end-of-run table.

Every number here is a function of ``results.jsonl`` alone (records sorted by dataset index),
so a run that was interrupted and resumed reports exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from segzero_env.metrics import IoUAccumulator, SampleIoU, sample_iou

QUERY_KINDS = ("short", "long")


DEFINITION_TEXT: dict[str, str] = {
    "lisa": (
        "LISA: ground-truth ignore pixels (255) removed from every count, prediction included; "
        "gIoU = mean over samples of I/U, a sample with U = 0 scoring 1; cIoU = sum(I) / sum(U); "
        "an unusable reply is an empty prediction"
    ),
    "seg-zero": (
        "Seg-Zero: ignore pixels counted as target; samples with U = 0 skipped; "
        "gIoU = mean of I/U; cIoU = sum(I) / sum(U); an unusable reply is an empty prediction"
    ),
}
"""What each metric definition means, written into ``metrics.json`` beside its name."""


def sample_counts(pred_mask: np.ndarray | None, gt_mask: np.ndarray, definition: str) -> SampleIoU:
    """Intersection, union and IoU of one prediction under ``definition`` (``"lisa"`` or ``"seg-zero"``)."""
    return sample_iou(pred_mask, gt_mask, definition)  # type: ignore[arg-type]


def record_counts(record: dict[str, Any]) -> SampleIoU:
    """Rebuild the :class:`SampleIoU` stored in a results record (``iou`` is ``None`` where the definition skips it)."""
    iou = record.get("iou")
    return SampleIoU(int(record["intersection"]), int(record["union"]), float("nan") if iou is None else float(iou))


def aggregate(samples: Iterable[SampleIoU], definition: str) -> dict[str, Any]:
    """Return ``{"giou", "ciou", "n", "n_skipped"}`` of per-sample counts under ``definition``."""
    accumulator = IoUAccumulator(definition=definition)  # type: ignore[arg-type]
    for sample in samples:
        accumulator.add(sample)
    return {
        "giou": float(accumulator.giou),
        "ciou": float(accumulator.ciou),
        "n": int(accumulator.n),
        "n_skipped": int(accumulator.n_skipped),
    }


def definition_text(definition: str) -> str:
    """One-line description of a metric definition."""
    if definition not in DEFINITION_TEXT:
        raise ValueError(f"unknown metric definition {definition!r}; use one of {', '.join(DEFINITION_TEXT)}")
    return DEFINITION_TEXT[definition]


def no_target_accuracy(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """GRES's N-acc and T-acc, or ``None`` when no record is a no-target sample.

    A sample is answered empty when its predicted mask has no pixel: an explicit "no object" answer,
    or an unusable reply (scored, as everywhere, as an empty prediction). N-acc is the share of
    no-target samples answered empty, T-acc the share of target samples not answered empty.
    gIoU and cIoU need nothing new: under LISA's rules an empty prediction on an empty target scores
    1, and a prediction on an empty target adds its pixels to the union, as GRES counts them.

    >>> rows = [{"no_target": True, "pred_empty": True}, {"no_target": True, "pred_empty": False},
    ...         {"no_target": False, "pred_empty": False}]
    >>> no_target_accuracy(rows)
    {'n_acc': 0.5, 't_acc': 1.0, 'n_no_target': 2, 'n_target': 1}
    """
    no_target = [r for r in records if r.get("no_target")]
    if not no_target:
        return None
    target = [r for r in records if not r.get("no_target")]
    return {
        "n_acc": sum(bool(r.get("pred_empty")) for r in no_target) / len(no_target),
        "t_acc": sum(not r.get("pred_empty") for r in target) / len(target) if target else None,
        "n_no_target": len(no_target),
        "n_target": len(target),
    }


def _mean(values: Iterable[float]) -> float | None:
    values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


def summarise(records: Sequence[dict[str, Any]], definition: str) -> dict[str, Any]:
    """Compute the run's metrics from its records (already sorted by index).

    Returns a dict with ``giou``, ``ciou``, ``n`` (samples with a ground-truth mask counted by the
    metric), ``metric_definition`` and its text, ``samples`` (records), ``unusable_replies`` and
    ``unusable_reply_rate`` (replies the parser could not read), ``empty_replies``,
    ``failure_counts`` (by reason), ``reward_mean``, ``reward_terms_mean`` (every term), and, when
    records carry query kinds, one object per kind (``short``, ``long``) with its giou / ciou / n.
    When some samples have no target (gRefCOCO, shapes level 4), ``no_target`` holds GRES's N-acc
    and T-acc (:func:`no_target_accuracy`).
    """
    scored = [r for r in records if r.get("has_mask", True)]
    metrics: dict[str, Any] = aggregate([record_counts(r) for r in scored], definition)
    metrics["metric_definition"] = definition
    metrics["metric_definition_text"] = definition_text(definition)
    metrics["samples"] = len(records)
    failures = Counter(r["parse_failure"] for r in records if r.get("parse_failure"))
    unusable = sum(failures.values())
    metrics["unusable_replies"] = unusable
    metrics["unusable_reply_rate"] = unusable / len(records) if records else 0.0
    metrics["empty_replies"] = sum(1 for r in records if not r.get("reply"))
    metrics["failure_counts"] = dict(sorted(failures.items()))
    metrics["reward_mean"] = _mean(r.get("reward") for r in records)
    term_names = sorted({name for r in records for name in (r.get("reward_terms") or {})})
    metrics["reward_terms_mean"] = {
        name: _mean((r.get("reward_terms") or {}).get(name) for r in records) for name in term_names
    }
    kinds = {r.get("query_kind") for r in records} - {None}
    for kind in sorted(kinds, key=lambda k: (QUERY_KINDS.index(k) if k in QUERY_KINDS else len(QUERY_KINDS), k)):
        subset = [r for r in scored if r.get("query_kind") == kind]
        metrics[str(kind)] = aggregate([record_counts(r) for r in subset], definition)
    accuracy = no_target_accuracy(scored)
    if accuracy is not None:
        metrics["no_target"] = accuracy
    return metrics


def summary_table(metrics: dict[str, Any]) -> str:
    """Format the headline numbers as a small fixed-width table, for the end of a run.

    >>> print(summary_table({"giou": 0.5, "ciou": 0.25, "n": 4, "unusable_reply_rate": 0.0}))
    split     gIoU    cIoU      n
    all     0.5000  0.2500      4
    unusable replies: 0.0%
    """
    splits = [k for k in metrics if isinstance(metrics.get(k), dict) and "giou" in metrics[k]]
    rows = [("all", metrics)] + [(k, metrics[k]) for k in splits]
    lines = [f"{'split':<6} {'gIoU':>7} {'cIoU':>7} {'n':>6}"]
    for name, values in rows:
        lines.append(f"{name:<6} {values['giou']:>7.4f} {values['ciou']:>7.4f} {values['n']:>6d}")
    lines.append(f"unusable replies: {100 * metrics.get('unusable_reply_rate', 0.0):.1f}%")
    accuracy = metrics.get("no_target")
    if accuracy:
        t_acc = "n/a" if accuracy["t_acc"] is None else f"{accuracy['t_acc']:.4f}"
        lines.append(
            f"N-acc: {accuracy['n_acc']:.4f} (n={accuracy['n_no_target']})  T-acc: {t_acc} (n={accuracy['n_target']})"
        )
    if metrics.get("reward_mean") is not None:
        lines.append(f"mean reward: {metrics['reward_mean']:.4f}")
    if metrics.get("miou_after_turn"):
        curve = ", ".join(f"{t + 1}: {v:.4f}" for t, v in enumerate(metrics["miou_after_turn"]))
        lines.append(f"mIoU after each turn: {curve}")
    return "\n".join(lines)

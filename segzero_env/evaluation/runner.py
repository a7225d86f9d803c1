"""``evaluate``: score a policy on a split, sample by sample, with resumable results.

The loop: take the split's sample ids in index order (the first ``limit``), skip those already in
``results.jsonl`` when resuming, and for each batch of ``batch_size`` samples reset the group
vector env on them, ask the policy for all replies in one call, score them in one ``step`` (one
segmenter call for the batch), and append one flushed line per sample. Metrics are recomputed
from the whole results file at the end.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from segzero_env.evaluation.results import METRICS_FILE, RESULTS_FILE, RUN_FILE, ResultsWriter, by_index, write_json
from segzero_env.evaluation.summary import (
    aggregate,
    definition_text,
    record_counts,
    sample_counts,
    summarise,
    summary_table,
)
from segzero_env.metrics import SampleIoU
from segzero_env.policies.base import Policy, make_policy

OVERLAY_DIR = "overlays"
HISTOGRAM_FILE = "iou_histogram.png"
RUN_KEYS_MUST_MATCH = ("env_id", "env_kwargs", "policy", "policy_kwargs", "metric_definition", "seed")
"""Settings a resumed run must share with the run it continues (``limit`` and ``batch_size`` may change)."""


def _jsonable(value: Any) -> Any:
    """Return a JSON-safe stand-in for a setting (objects such as segmenter instances become their repr)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        if isinstance(value, Mapping):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _policy_label(policy: str | Policy) -> str:
    if isinstance(policy, str):
        return policy
    return f"{type(policy).__module__}:{type(policy).__qualname__}"


def _check_run(out_dir: Path, run: dict[str, Any], resume: bool) -> None:
    """On resume, refuse to mix results of a differently configured run into this one."""
    path = out_dir / RUN_FILE
    if not (resume and path.exists()):
        return
    previous = json.loads(path.read_text(encoding="utf-8"))
    diffs = [
        f"{key}: was {previous.get(key)!r}, now {run.get(key)!r}"
        for key in RUN_KEYS_MUST_MATCH
        if previous.get(key) != run.get(key)
    ]
    if diffs:
        raise ValueError(
            f"--resume on {out_dir} with different settings ({'; '.join(diffs)}); "
            "rerun with the original settings or write to another --out folder"
        )


def _record(
    index: int,
    reply: Any,
    info: dict[str, Any],
    reward: float,
    counts: SampleIoU | None,
    iou: float | None,
    timings: dict[str, float],
) -> dict[str, Any]:
    """One line of ``results.jsonl``."""
    return {
        "index": index,
        "sample_id": str(info["sample_id"]),
        "query": info.get("query"),
        "query_kind": info.get("query_kind"),
        "reply": reply if isinstance(reply, str) else repr(reply),
        "answer": info.get("answer"),
        "parse_failure": info.get("parse_failure"),
        "parse_detail": info.get("parse_detail"),
        "has_mask": counts is not None,
        "iou": iou,
        "intersection": None if counts is None else counts.intersection,
        "union": None if counts is None else counts.union,
        "env_iou": info.get("iou"),
        "reward": float(reward),
        "reward_terms": {k: float(v) for k, v in (info.get("reward_terms") or {}).items()},
        "timings": {k: round(v, 6) for k, v in timings.items()},
    }


def evaluate(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    policy: str | Policy = "oracle",
    out_dir: str | Path = "eval",
    limit: int | None = None,
    resume: bool = False,
    save_overlays: int = 0,
    batch_size: int = 1,
    policy_kwargs: Mapping[str, Any] | None = None,
    metric_definition: str = "lisa",
    seed: int = 0,
    progress: bool = True,
    print_summary: bool = False,
) -> dict[str, Any]:
    """Score ``policy`` on the env's split and write ``results.jsonl``, ``metrics.json`` and pictures.

    Args:
        env_id: Registered env id (``"ReasonSegShapes-v0"``, ``"ReasonSeg-v0"``, ...).
        env_kwargs: Keyword arguments for the env (``split``, ``segmenter``, ``data_root``, ...).
        policy: Policy name, ``"module:Class"``, or a policy object.
        out_dir: Output folder (created).
        limit: Score only the first ``limit`` samples of the split (index order); ``None`` = all.
        resume: Continue a run in ``out_dir``: samples already in ``results.jsonl`` are not scored
            again. Without it, an ``out_dir`` holding results is refused.
        save_overlays: Write overlay pictures of the first ``K`` samples and an IoU histogram.
        batch_size: Samples per policy call and per env step (the segmenter sees them together).
        policy_kwargs: Keyword arguments for the policy's constructor (name or ``"module:Class"`` only).
        metric_definition: ``"lisa"`` (default; ignore pixels removed, empty-vs-empty scores 1) or
            ``"seg-zero"`` (ignore counted as target, empty-vs-empty skipped).
        seed: Seed given to ``policy.reset`` and to every env reset.
        progress: Show a tqdm progress bar with the running gIoU.
        print_summary: Print the summary table at the end.

    Returns:
        The metrics dict also written to ``metrics.json``.
    """
    import gymnasium as gym

    import segzero_env  # noqa: F401 - registers the env ids

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    env_kwargs = dict(env_kwargs or {})
    policy_kwargs = dict(policy_kwargs or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = {
        "env_id": env_id,
        "env_kwargs": _jsonable(env_kwargs),
        "policy": _policy_label(policy),
        "policy_kwargs": _jsonable(policy_kwargs),
        "metric_definition": metric_definition,
        "seed": seed,
        "limit": limit,
        "batch_size": batch_size,
    }
    _check_run(out, run, resume)
    definition_text(metric_definition)  # fail on an unknown definition before any work
    writer = ResultsWriter(out / RESULTS_FILE, resume=resume)
    write_json(out / RUN_FILE, run)
    vec = gym.make_vec(env_id, num_envs=batch_size, vectorization_mode="vector_entry_point", group_size=1, **env_kwargs)
    envs = vec.unwrapped.envs
    agent: Policy | None = None
    started = time.perf_counter()
    try:
        sample_ids = list(envs[0].dataset.sample_ids)
        if limit is not None:
            sample_ids = sample_ids[:limit]
        selected = set(sample_ids)
        records = [r for r in writer.existing if str(r["sample_id"]) in selected]
        done = {str(r["sample_id"]) for r in records}
        todo = [(i, sid) for i, sid in enumerate(sample_ids) if sid not in done]
        agent = make_policy(policy, **policy_kwargs)
        if callable(getattr(agent, "reset", None)):
            agent.reset(seed)
        counts = [record_counts(r) for r in records if r.get("has_mask", True)]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(sample_ids), initial=len(records), desc=f"eval {env_id}", unit="sample")
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            n = len(batch)
            # the vector env always steps batch_size sub-envs; spare ones repeat the last sample and
            # get the empty reply, which the env scores without calling the segmenter
            block_ids = [sid for _, sid in batch] + [batch[-1][1]] * (batch_size - n)
            t0 = time.perf_counter()
            obs, _ = vec.reset(seed=seed, options={"sample_ids": block_ids})
            observations = [{"image": obs["image"][i], "query": obs["query"][i]} for i in range(n)]
            infos = [envs[i].episode_info(envs[i].episode) for i in range(n)]
            t1 = time.perf_counter()
            replies = agent.act(observations, infos)
            t2 = time.perf_counter()
            if not isinstance(replies, Sequence) or isinstance(replies, str) or len(replies) != n:
                raise RuntimeError(
                    f"policy {_policy_label(policy)!r} returned {type(replies).__name__} of "
                    f"{len(replies) if hasattr(replies, '__len__') else '?'} replies for {n} observations; "
                    "act() must return one string per observation"
                )
            _, rewards, _, _, _ = vec.step(list(replies) + [""] * (batch_size - n))
            t3 = time.perf_counter()
            timings = {"reset_s": (t1 - t0) / n, "policy_s": (t2 - t1) / n, "step_s": (t3 - t2) / n}
            for i, (index, _sid) in enumerate(batch):
                env = envs[i]
                info = env.step_info(env.last_outcome)
                gt_mask = env.current_sample.mask
                sample_count = None
                if gt_mask is not None:
                    sample_count = sample_counts(env.last_pred_mask, gt_mask, metric_definition)
                iou = None if sample_count is None or math.isnan(sample_count.iou) else sample_count.iou
                record = _record(index, replies[i], info, float(rewards[i]), sample_count, iou, timings)
                if index < save_overlays:
                    from segzero_env.evaluation.overlays import overlay_filename, save_overlay

                    shown = iou if iou is not None else float("nan")
                    save_overlay(out / OVERLAY_DIR / overlay_filename(index, record["sample_id"], shown), env, shown)
                writer.append(record)
                records.append(record)
                if sample_count is not None:
                    counts.append(sample_count)
            if bar is not None:
                bar.update(n)
                running = aggregate(counts, metric_definition)
                bar.set_postfix(giou=f"{running['giou']:.4f}", ciou=f"{running['ciou']:.4f}")
        if bar is not None:
            bar.close()
    finally:
        writer.close()
        if agent is not None and callable(getattr(agent, "close", None)) and agent is not policy:
            agent.close()
        vec.close()
    ordered = by_index(records)
    metrics = summarise(ordered, metric_definition)
    metrics["env_id"] = env_id
    metrics["policy"] = _policy_label(policy)
    stats = agent.stats() if callable(getattr(agent, "stats", None)) else {}
    # counters of this session only (a resumed run reports the resumed part)
    metrics["policy_stats"] = _jsonable(stats)
    metrics["timings"] = {
        "wall_s": time.perf_counter() - started,
        "scored_this_session": len(todo),
        "mean_policy_s": _mean_timing(ordered, "policy_s"),
        "mean_step_s": _mean_timing(ordered, "step_s"),
    }
    write_json(out / METRICS_FILE, metrics)
    if save_overlays > 0 and ordered:
        from segzero_env.evaluation.overlays import save_iou_histogram

        ious = [r["iou"] for r in ordered if r.get("iou") is not None]
        kinds = [r.get("query_kind") for r in ordered if r.get("iou") is not None]
        title = f"{env_id} / {_policy_label(policy)}: gIoU {metrics['giou']:.4f} (n={metrics['n']})"
        save_iou_histogram(ious, out / HISTOGRAM_FILE, title=title, kinds=kinds)
    if print_summary:
        print(summary_table(metrics))
    return metrics


def _mean_timing(records: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [r["timings"][key] for r in records if key in (r.get("timings") or {})]
    return sum(values) / len(values) if values else None

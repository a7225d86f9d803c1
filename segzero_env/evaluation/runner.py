"""``evaluate``: score a policy on a split, sample by sample, with resumable results.

The loop: take the split's sample ids in index order (the first ``limit``), skip those already in
``results.jsonl`` when resuming, and for each batch of ``batch_size`` samples reset the group
vector env on them, ask the policy for all replies in one call, score them in one ``step`` (one
segmenter call for the batch), and append one flushed line per sample. Multi-turn envs
(``max_turns > 1``) are played turn by turn until each episode terminates; the policy sees each
turn's feedback in ``info["prompt"]``. Metrics are recomputed from the whole results file at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segzero_env.evaluation.results import METRICS_FILE, RESULTS_FILE, RUN_FILE, ResultsWriter, by_index, write_json
from segzero_env.evaluation.run_folder import check_resume, jsonable, lock_run_folder
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
from segzero_env.redaction import redact_settings
from segzero_env.trust import check_env_id

OVERLAY_DIR = "overlays"
HISTOGRAM_FILE = "iou_histogram.png"


def _policy_label(policy: str | type | Policy) -> str:
    if isinstance(policy, str):
        return policy
    cls = policy if isinstance(policy, type) else type(policy)
    return f"{cls.__module__}:{cls.__qualname__}"


@dataclass
class PlayedEpisode:
    """What one sample's episode left behind, captured when it terminated.

    Attributes:
        replies: The policy's reply on every turn (one for single-turn envs).
        reward: The episode's return (sum of its step rewards).
        info: The last step's info.
        sample: The sample (original frame).
        outcome: The last scored outcome (prediction and the prompts sent to the segmenter).
        pred_mask: The final predicted mask (``env.last_pred_mask``), ``None`` when unusable.
    """

    replies: list[Any]
    reward: float
    info: dict[str, Any]
    sample: Any
    outcome: Any
    pred_mask: np.ndarray | None


def _check_replies(replies: Any, expected: int, label: str) -> None:
    if isinstance(replies, str) or not isinstance(replies, Sequence) or len(replies) != expected:
        got = len(replies) if hasattr(replies, "__len__") else "?"
        raise RuntimeError(
            f"policy {label!r} returned {type(replies).__name__} of {got} replies for {expected} observations; "
            "act() must return a list with one string per observation"
        )


def _play_batch(
    vec: Any, agent: Policy, sample_ids: list[str], batch_size: int, seed: int, label: str
) -> tuple[list[PlayedEpisode], dict[str, float]]:
    """Play one episode per sample id on the vector env's first ``len(sample_ids)`` sub-envs.

    All live episodes are answered in one policy call and scored in one ``step`` per turn; a
    multi-turn episode is captured the moment it terminates (its sub-env may be reset afterwards).
    The vector env always steps ``batch_size`` sub-envs: spare ones repeat the last sample and get
    the empty reply, which the env scores without calling the segmenter.
    """
    envs = vec.unwrapped.envs
    n = len(sample_ids)
    t0 = time.perf_counter()
    obs, _ = vec.reset(seed=seed, options={"sample_ids": sample_ids + [sample_ids[-1]] * (batch_size - n)})
    infos = [envs[i].episode_info(envs[i].episode) for i in range(n)]
    reset_s, policy_s, step_s = time.perf_counter() - t0, 0.0, 0.0
    replies: list[list[Any]] = [[] for _ in range(n)]
    returns = [0.0] * n
    played: list[PlayedEpisode | None] = [None] * n
    live = list(range(n))
    while live:
        observations = [{key: value[i] for key, value in obs.items()} for i in live]
        t0 = time.perf_counter()
        answers = agent.act(observations, [infos[i] for i in live])
        policy_s += time.perf_counter() - t0
        _check_replies(answers, len(live), label)
        actions: list[Any] = [""] * batch_size
        for i, reply in zip(live, answers, strict=True):
            actions[i] = reply
            replies[i].append(reply)
        t0 = time.perf_counter()
        obs, rewards, terminated, truncated, _ = vec.step(actions)
        step_s += time.perf_counter() - t0
        still_live = []
        for i in live:
            env = envs[i]
            returns[i] += float(rewards[i])
            info = env.step_info(env.last_outcome)
            if terminated[i] or truncated[i]:
                played[i] = PlayedEpisode(
                    replies[i], returns[i], info, env.current_sample, env.last_outcome, env.last_pred_mask
                )
            else:
                infos[i] = info
                still_live.append(i)
        live = still_live
    timings = {"reset_s": reset_s / n, "policy_s": policy_s / n, "step_s": step_s / n}
    return [p for p in played if p is not None], timings


def _record(
    index: int, episode: PlayedEpisode, counts: SampleIoU | None, iou: float | None, timings: dict[str, float]
) -> dict[str, Any]:
    """One line of ``results.jsonl``."""
    info = episode.info
    reply = episode.replies[-1]
    record = {
        "index": index,
        "sample_id": str(info["sample_id"]),
        "query": info.get("query"),
        "query_kind": info.get("query_kind"),
        "reply": reply if isinstance(reply, str) else repr(reply),
        "turns": len(episode.replies),
        "answer": info.get("answer"),
        "parse_failure": info.get("parse_failure"),
        "parse_detail": info.get("parse_detail"),
        "has_mask": counts is not None,
        "no_target": bool(info.get("no_target", False)),
        "pred_empty": episode.pred_mask is None or not bool(np.any(episode.pred_mask)),
        "iou": iou,
        "intersection": None if counts is None else counts.intersection,
        "union": None if counts is None else counts.union,
        "env_iou": info.get("iou"),
        "reward": float(episode.reward),
        "reward_terms": {k: float(v) for k, v in (info.get("reward_terms") or {}).items()},
        "timings": {k: round(v, 6) for k, v in timings.items()},
    }
    if len(episode.replies) > 1:
        record["replies"] = [r if isinstance(r, str) else repr(r) for r in episode.replies]
    if info.get("iou_history") is not None:
        # multi-turn envs: the env's (LISA) IoU after each scored turn
        record["iou_per_turn"] = [float(v) for v in info["iou_history"]]
    return record


def select_sample_ids(split_ids: list[str], only: Sequence[str] | None, where: str) -> tuple[list[str], list[str]]:
    """The split's ids (in its order), restricted to ``only`` when given; and the ids of ``only`` it lacks.

    >>> select_sample_ids(["a", "b", "c"], ["c", "z", "a"], "demo")
    (['a', 'c'], ['z'])
    >>> select_sample_ids(["a", "b"], ["y", "z"], "Demo-v0 split 'val'")
    Traceback (most recent call last):
    ...
    ValueError: none of the 2 sample ids asked for is in Demo-v0 split 'val' (first: 'y'); is it the split ...

    Raises:
        ValueError: ``only`` names ids but none of them is in the split (a wrong split or env).
    """
    if only is None:
        return split_ids, []
    wanted = {str(s) for s in only}
    chosen = [sid for sid in split_ids if sid in wanted]
    missing = sorted(wanted.difference(chosen))
    if wanted and not chosen:
        raise ValueError(
            f"none of the {len(wanted)} sample ids asked for is in {where} (first: {missing[0]!r}); "
            "is it the split they come from?"
        )
    return chosen, missing


def iou_after_turn(records: Sequence[dict[str, Any]]) -> list[float] | None:
    """Mean env IoU after each turn over records with ``iou_per_turn`` (multi-turn runs), else ``None``.

    An episode that stopped early keeps its last IoU for the later turns, so every point of the
    curve averages the same samples.

    >>> iou_after_turn([{"iou_per_turn": [0.5, 0.7]}, {"iou_per_turn": [0.9]}])
    [0.7, 0.8]
    """
    curves = [r["iou_per_turn"] for r in records if r.get("iou_per_turn")]
    if not curves:
        return None
    turns = max(len(c) for c in curves)
    padded = [list(c) + [c[-1]] * (turns - len(c)) for c in curves]
    return [round(sum(c[t] for c in padded) / len(padded), 6) for t in range(turns)]


def evaluate(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    policy: str | type | Policy = "oracle",
    out_dir: str | Path = "eval",
    limit: int | None = None,
    resume: bool = False,
    save_overlays: int = 0,
    batch_size: int = 1,
    policy_kwargs: Mapping[str, Any] | None = None,
    metric_definition: str = "lisa",
    seed: int = 0,
    sample_ids: Sequence[str] | None = None,
    progress: bool = True,
    print_summary: bool = False,
) -> dict[str, Any]:
    """Score ``policy`` on the env's split and write ``results.jsonl``, ``metrics.json`` and pictures.

    Args:
        env_id: Registered env id (``"ReasonSegShapes-v0"``, ``"ReasonSeg-v0"``, ...).
        env_kwargs: Keyword arguments for the env (``split``, ``segmenter``, ``data_root``, ...).
        policy: Policy name, a policy class or object, or ``"module:Class"`` (runs code: only when
            code is allowed, see :mod:`segzero_env.trust`).
        out_dir: Output folder (created).
        limit: Score only the first ``limit`` samples of the split (index order); ``None`` = all.
            With ``sample_ids``, the first ``limit`` of those.
        resume: Continue a run in ``out_dir``: samples already in ``results.jsonl`` are not scored
            again. Without it, an ``out_dir`` holding results is refused. One run writes to a
            folder at a time (a lock on ``run.lock``).
        save_overlays: Write overlay pictures of the first ``K`` samples and an IoU histogram.
        batch_size: Samples per policy call and per env step (the segmenter sees them together).
        policy_kwargs: Keyword arguments for the policy's constructor (name or ``"module:Class"`` only).
        metric_definition: ``"lisa"`` (default; ignore pixels removed, empty-vs-empty scores 1) or
            ``"seg-zero"`` (ignore counted as target, empty-vs-empty skipped).
        seed: Seed given to ``policy.reset`` and to every env reset.
        sample_ids: Score only these samples (in the split's order), e.g. the ids of a replies
            file; ids the split does not hold are left out and counted in
            ``metrics["sample_selection"]`` (none held raises ``ValueError``). ``None`` = the whole split.
        progress: Show a tqdm progress bar with the running gIoU.
        print_summary: Print the summary table at the end.

    Returns:
        The metrics dict also written to ``metrics.json``.

    Raises:
        RunConflictError: Another run is writing to ``out_dir``, or ``resume`` meets a run with
            other settings (compared with defaults filled in, secrets left out) or without ``run.json``.
    """
    import segzero_env  # noqa: F401 - registers the env ids

    check_env_id(env_id)
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
        # secrets (api_key, tokens) are never written; a resume does not compare them
        "env_kwargs": redact_settings(jsonable(env_kwargs)),
        "policy": _policy_label(policy),
        "policy_kwargs": redact_settings(jsonable(policy_kwargs)),
        "metric_definition": metric_definition,
        "seed": seed,
        "limit": limit,
        "batch_size": batch_size,
    }
    definition_text(metric_definition)  # fail on an unknown definition before any work
    with lock_run_folder(out):
        check_resume(out, run, resume, policy)
        return _score_into(
            out,
            run,
            env_id=env_id,
            env_kwargs=env_kwargs,
            policy=policy,
            policy_kwargs=policy_kwargs,
            limit=limit,
            only=sample_ids,
            resume=resume,
            save_overlays=save_overlays,
            batch_size=batch_size,
            metric_definition=metric_definition,
            seed=seed,
            progress=progress,
            print_summary=print_summary,
        )


def _score_into(
    out: Path,
    run: dict[str, Any],
    *,
    env_id: str,
    env_kwargs: dict[str, Any],
    policy: str | type | Policy,
    policy_kwargs: dict[str, Any],
    limit: int | None,
    only: Sequence[str] | None,
    resume: bool,
    save_overlays: int,
    batch_size: int,
    metric_definition: str,
    seed: int,
    progress: bool,
    print_summary: bool,
) -> dict[str, Any]:
    """The body of :func:`evaluate`, run while holding the folder's lock."""
    import gymnasium as gym

    writer = ResultsWriter(out / RESULTS_FILE, resume=resume)
    write_json(out / RUN_FILE, run)
    vec: Any = None
    not_in_split: list[str] = []
    agent: Policy | None = None
    started = time.perf_counter()
    try:
        # NextStep: this loop resets before every batch and reads each sub-env's state the moment its
        # episode ends, so a same-step autoreset must not replace that state first.
        vec = gym.make_vec(
            env_id,
            num_envs=batch_size,
            vectorization_mode="vector_entry_point",
            group_size=1,
            **{**env_kwargs, "autoreset_mode": "NextStep"},
        )
        dataset = vec.unwrapped.envs[0].dataset
        where = f"{env_id} split {getattr(dataset, 'split', '?')!r}"
        sample_ids, not_in_split = select_sample_ids(list(dataset.sample_ids), only, where)
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
            ids = [sid for _, sid in batch]
            played, timings = _play_batch(vec, agent, ids, batch_size, seed, _policy_label(policy))
            for (index, _sid), episode in zip(batch, played, strict=True):
                gt_mask = episode.sample.mask
                sample_count = None
                if gt_mask is not None:
                    sample_count = sample_counts(episode.pred_mask, gt_mask, metric_definition)
                iou = None if sample_count is None or math.isnan(sample_count.iou) else sample_count.iou
                record = _record(index, episode, sample_count, iou, timings)
                if index < save_overlays:
                    from segzero_env.evaluation.overlays import overlay_filename, save_overlay

                    shown = iou if iou is not None else float("nan")
                    name = overlay_filename(index, record["sample_id"], shown)
                    save_overlay(out / OVERLAY_DIR / name, episode.sample, episode.outcome, shown)
                writer.append(record)
                records.append(record)
                if sample_count is not None:
                    counts.append(sample_count)
            if bar is not None:
                bar.update(len(batch))
                running = aggregate(counts, metric_definition)
                bar.set_postfix(giou=f"{running['giou']:.4f}", ciou=f"{running['ciou']:.4f}")
        if bar is not None:
            bar.close()
    finally:
        writer.close()
        if agent is not None and callable(getattr(agent, "close", None)) and agent is not policy:
            agent.close()
        if vec is not None:
            vec.close()
    ordered = by_index(records)
    metrics = summarise(ordered, metric_definition)
    metrics["env_id"] = env_id
    metrics["policy"] = _policy_label(policy)
    curve = iou_after_turn(ordered)
    if curve is not None:
        metrics["miou_after_turn"] = curve
    stats = agent.stats() if callable(getattr(agent, "stats", None)) else {}
    # counters of this session only (a resumed run reports the resumed part)
    metrics["policy_stats"] = jsonable(stats)
    if only is not None:
        metrics["sample_selection"] = {
            "asked": len(set(map(str, only))),
            "not_in_split": len(not_in_split),
            "not_in_split_examples": not_in_split[:5],
        }
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

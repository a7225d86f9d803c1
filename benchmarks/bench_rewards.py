"""Replies/s of every reward preset against the upstream rewards, on one CPU core, measured side by side.

For each preset: parse + every term + combine (``parse_reply``, ``compute_terms`` with the preset's
rules, ``preset.combine``) per reply, as the env's scoring does. The mask IoU is left to the
segmenter path (the env counts it once and hands it to the terms), so no mask is involved here. The upstream baseline is
``upstream_baseline.py``: a re-implementation of Seg-Zero's and VisionReasoner's published training
rewards. Seg-Zero presets are timed on Seg-Zero-style replies, VisionReasoner presets on
VisionReasoner-style ones, each on two workloads:

* ``canonical``: well-formed replies with a realistic reasoning paragraph (what a trained policy writes);
* ``mutated``: the generator's mutations (whitespace, quotes, inverted boxes, floats, strings, NaN,
  missing keys, braces in the reasoning, ...), many of them malformed.

Rounds alternate ours and upstream; the best round of each is kept (CPU time, one process), so a
shared machine slows both alike. For the exact presets the check also counts replies whose terms
differ from upstream's (must be 0).

Usage::

    python benchmarks/bench_rewards.py
    python benchmarks/bench_rewards.py --runs 6   # six tables, then each row's ratios side by side
    python benchmarks/bench_env.py --skip-env     # prints the same table
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import upstream_baseline as baseline  # noqa: E402

from segzero_env.answers import format_reply  # noqa: E402
from segzero_env.parsing import parse_reply  # noqa: E402
from segzero_env.rewards import PRESETS, RewardInput, compute_terms  # noqa: E402
from segzero_env.types import AnswerSchema, ObjectAnswer  # noqa: E402

GT_BOX = (250, 180, 410, 330)
GT_POINTS = ((300, 250), (360, 260))
THINK = (
    "The query asks for the object that could roll. There are three shapes: a red square, a blue circle "
    "and a green triangle. Only the circle can roll, so the target is the blue circle on the right."
)
SEG_ZERO_TERMS = ("think_format", "answer_format", "box_iou", "box_l1", "points")
VR_TERMS = ("vr_format", "vr_accuracy", "non_repeat")


def canonical_replies(n: int, vision_reasoner: bool, seed: int = 0) -> list[str]:
    """Well-formed replies around the ground truth (integer coordinates, strict JSON)."""
    rng = np.random.default_rng(seed)
    replies = []
    for _ in range(n):
        x1, y1, x2, y2 = (int(v + rng.integers(-20, 21)) for v in GT_BOX)
        p = [(int(x + rng.integers(-40, 41)), int(y + rng.integers(-40, 41))) for x, y in GT_POINTS]
        if vision_reasoner:
            objects = [ObjectAnswer((x1, y1, x2, y2), (p[0],))]
            replies.append(format_reply(objects, schema=AnswerSchema.VISION_REASONER, think=THINK))
        else:
            replies.append(format_reply(box=(x1, y1, x2, y2), points=p, think=THINK))
    return replies


def _cpu(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def compare(preset_name: str, replies: list[str], rounds: int = 5) -> dict[str, float]:
    """Replies/s of the preset and of the upstream reward on the same replies, and their disagreements."""
    preset = PRESETS[preset_name]
    vision_reasoner = preset_name.startswith("vision-reasoner")
    gt_box = tuple(float(v) for v in GT_BOX)
    gt_points = tuple((float(x), float(y)) for x, y in GT_POINTS)
    if vision_reasoner:
        solution = baseline.vision_reasoner_solution([(GT_BOX, GT_POINTS[0])])
        upstream_terms, names = baseline.vision_reasoner_terms, VR_TERMS
    else:
        solution = baseline.seg_zero_solution(GT_BOX, GT_POINTS)
        upstream_terms, names = baseline.seg_zero_terms, SEG_ZERO_TERMS

    def ours(batch: list[str] = replies) -> list[dict[str, float]]:
        out = []
        for reply in batch:
            inp = RewardInput.fast(  # as the env's scoring builds it
                reply=reply,
                parsed=parse_reply(reply),
                gt_box=gt_box,
                gt_points=gt_points,
                pred_mask=None,
                gt_mask=None,
                image_size=840,
            )
            terms = compute_terms(inp, preset.rules)
            preset.combine(terms)
            out.append(terms)
        return out

    def theirs(batch: list[str] = replies) -> list[dict[str, float]]:
        out = []
        for reply in batch:
            terms = upstream_terms(reply, solution)
            sum(terms.values())
            out.append(terms)
        return out

    ours(replies[:20])  # warm up both sides (the matching imports scipy on first use)
    theirs(replies[:20])
    best_ours = best_theirs = float("inf")
    for _ in range(rounds):
        best_ours = min(best_ours, _cpu(ours))
        best_theirs = min(best_theirs, _cpu(theirs))
    disagreements = sum(any(a[k] != b[k] for k in names) for a, b in zip(ours(), theirs(), strict=True))
    return {
        "ours_replies_per_s": len(replies) / best_ours,
        "upstream_replies_per_s": len(replies) / best_theirs,
        "ratio": best_theirs / best_ours,
        "disagreements": float(disagreements),
    }


def run(n_replies: int = 2000, rounds: int = 5) -> dict[str, float]:
    """Print the per-preset table; return its figures keyed ``<preset>/<workload>/<figure>``."""
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)  # the baseline's numpy on NaN boxes
    mutated = baseline.generate_replies(2 * n_replies, seed=1)
    workloads = {
        False: {"canonical": canonical_replies(n_replies, False), "mutated": mutated[0::2]},
        True: {"canonical": canonical_replies(n_replies, True), "mutated": mutated[1::2]},
    }
    results: dict[str, float] = {}
    print(f"{'preset':24} {'workload':10} {'ours/s':>10} {'upstream/s':>11} {'ratio':>6} {'differ':>7}")
    for name in PRESETS:
        if name == "mask-iou":
            continue  # no upstream counterpart: it needs the segmenter's mask
        for workload, replies in workloads[name.startswith("vision-reasoner")].items():
            r = compare(name, replies, rounds)
            differ = f"{int(r['disagreements'])}" if PRESETS[name].rules == "upstream" else "-"
            print(
                f"{name:24} {workload:10} {r['ours_replies_per_s']:>10,.0f} {r['upstream_replies_per_s']:>11,.0f} "
                f"{r['ratio']:>5.2f}x {differ:>7}"
            )
            results.update({f"{name}/{workload}/{k}": v for k, v in r.items()})
    return results


def summarize(runs: list[dict[str, float]]) -> dict[str, list[float]]:
    """Each ``<preset>/<workload>`` row's ratio in every run, in run order."""
    return {key[: -len("/ratio")]: [r[key] for r in runs] for key in runs[0] if key.endswith("/ratio")}


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="whole tables to measure, one after the other")
    parser.add_argument("--replies", type=int, default=2000, help="replies per workload")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per side; the best is kept")
    args = parser.parse_args(argv)
    runs = []
    for i in range(args.runs):
        if args.runs > 1:
            print(f"run {i + 1} of {args.runs}")
        runs.append(run(args.replies, args.rounds))
    if args.runs == 1:
        print(json.dumps({k: round(v, 3) for k, v in runs[0].items()}))
        return
    print("ratio in each run (min / median / max):")
    figures: dict[str, object] = {"runs": args.runs}
    rows = summarize(runs)
    for row, ratios in rows.items():
        each = ", ".join(f"{r:.2f}x" for r in ratios)
        median = statistics.median(ratios)
        print(f"{row:34} {each}   ({min(ratios):.2f}x / {median:.2f}x / {max(ratios):.2f}x)")
        figures[f"{row}/ratios"] = [round(r, 3) for r in ratios]
        figures[f"{row}/median_ratio"] = round(median, 3)
    exact = [row for row in rows if PRESETS[row.split("/")[0]].rules == "upstream"]  # as the table's "differ" column
    figures["disagreements"] = sum(r[f"{row}/disagreements"] for r in runs for row in exact)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

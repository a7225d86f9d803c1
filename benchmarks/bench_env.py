"""Throughput of reply scoring and of the synthetic environment, on one CPU core.

Prints these figures and ends with one JSON line holding them all:

1. parse + reward: replies/s through ``parse_reply`` + ``compute_terms`` + ``preset.combine``
   (the segmenter excluded), on a fixed mix of well-formed and malformed replies with small
   synthetic masks.
2. env: steps/s of ``ReasonSegShapes-v0`` with each CPU segmenter (``box``, ``grabcut``), the
   reply being a well-formed answer around the ground-truth box; ``reset`` is timed separately.
   Both are timed in process CPU time, less disturbed by other users of the machine than wall time.
3. per preset (``bench_rewards.py``): replies/s of parse + every term for each reward preset next to
   the upstream reward it reproduces, their ratio, and how many replies disagree with upstream.

Absolute rates depend on the machine and on what else runs on it, so the script also prints
ratios of figures measured in the same run: what the reward terms add to parsing
(``reward_cost_ratio``), and how many replies are scored in the time of one env step with each
segmenter (``replies_per_<segmenter>_step``; far above 1 means the segmenter, not scoring,
bounds a step).

Usage::

    python benchmarks/bench_env.py                 # everything
    python benchmarks/bench_env.py --skip-env      # scoring only (with the per-preset table of bench_rewards.py)
    python benchmarks/bench_env.py --replies 50000 --episodes 40
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

# One core: keep numpy / OpenCV from spreading over the machine before they are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from segzero_env.answers import format_reply  # noqa: E402
from segzero_env.parsing import parse_reply  # noqa: E402
from segzero_env.rewards import PRESETS, RewardInput, compute_terms  # noqa: E402
from segzero_env.types import AnswerSchema, ObjectAnswer  # noqa: E402

MASK_SIDE = 64
MALFORMED = [
    "",
    "I think it is the red cup on the left.",
    "<think>The red cup is on the left.</think>",
    '<think>left cup</think><answer>{"bbox": [10, 20, 30], "points_1": [1, 2], "points_2": [3, 4]}</answer>',
    '<think>left cup</think><answer>{"bbox": [10, 20, 30, 40], "points_1": [1, 2]}</answer>',
    '<think>left cup</think><answer>{"bbox": [10, 20, 30, NaN], "points_1": [1, 2], "points_2": [3, 4]}</answer>',
    "<think>left cup</think><answer>{bbox: [10, 20, 30, 40]</answer>",
    '<think>left cup</think><answer>{"bbox": [10, 20, 30, 40], "points_1": [1, 2], "points_2": [3, 4]}',
    '<think>a. a. a.</think><answer>[{"bbox_2d": [1, 2, 3, 4], "point_2d": ["x", 2]}]</answer>',
    "<answer></answer>",
]


def build_replies(n_distinct: int, rng: np.random.Generator) -> list[str]:
    """A realistic mix: 60% Seg-Zero JSON, 10% single-quoted, 10% VisionReasoner lists, 20% malformed."""
    think = (
        "The query asks for the object that could roll. There are three shapes: a red square, a blue "
        "circle and a green triangle. Only the circle can roll, so the target is the blue circle."
    )
    replies = []
    for i in range(n_distinct):
        x1, y1 = rng.integers(0, 600, 2)
        w, h = rng.integers(20, 240, 2)
        box = (int(x1), int(y1), int(x1 + w), int(y1 + h))
        points = [(int(x1 + w // 3), int(y1 + h // 2)), (int(x1 + 2 * w // 3), int(y1 + h // 2))]
        kind = i % 10
        if kind < 6:
            replies.append(format_reply(box=box, points=points, think=think))
        elif kind == 6:
            replies.append(format_reply(box=box, points=points, think=think).replace('"', "'"))
        elif kind == 7:
            objects = [ObjectAnswer(box, (points[0],)), ObjectAnswer(box, (points[1],))]
            replies.append(format_reply(objects, schema=AnswerSchema.VISION_REASONER, think=think))
        else:
            replies.append(MALFORMED[(i // 10) % len(MALFORMED)])
    return replies


def bench_scoring(n_replies: int, preset_name: str, rounds: int = 3) -> dict[str, float]:
    """Time parse alone and parse + every term + combine; best of ``rounds``."""
    rng = np.random.default_rng(0)
    replies = build_replies(1000, rng)
    gt = np.zeros((MASK_SIDE, MASK_SIDE), np.uint8)
    gt[10:40, 12:44] = 1
    gt[0, :] = 255  # ignore pixels exercise LISA's rule
    preds = []
    for _ in range(8):
        pred = np.zeros((MASK_SIDE, MASK_SIDE), bool)
        y, x = rng.integers(0, 30, 2)
        pred[y : y + 30, x : x + 30] = True
        preds.append(pred)
    gt_box = (250.0, 180.0, 410.0, 330.0)
    gt_points = ((300.0, 250.0), (360.0, 260.0))
    preset = PRESETS[preset_name]
    reps = [replies[i % len(replies)] for i in range(n_replies)]

    def parse_only() -> None:
        for reply in reps:
            parse_reply(reply)

    def parse_and_reward() -> None:
        for i, reply in enumerate(reps):
            parsed = parse_reply(reply)
            pred = preds[i & 7] if parsed.ok else None
            terms = compute_terms(RewardInput(reply, parsed, gt_box, gt_points, pred, gt, 840), preset.rules)
            preset.combine(terms)

    out: dict[str, float] = {}
    for name, fn in (("parse", parse_only), ("parse_reward", parse_and_reward)):
        best = min(_cpu_time(fn) for _ in range(rounds))
        out[f"{name}_replies_per_s"] = n_replies / best
    return out


def _cpu_time(fn) -> float:
    # Process CPU time: less disturbed by other users of a shared machine than wall time.
    start = time.process_time()
    fn()
    return time.process_time() - start


def bench_env(segmenter: str, episodes: int) -> dict[str, float]:
    """Reset + step ``ReasonSegShapes-v0`` with a reply boxed around the ground truth."""
    import cv2
    import gymnasium as gym

    import segzero_env  # noqa: F401

    cv2.setNumThreads(1)
    env = gym.make("ReasonSegShapes-v0", segmenter=segmenter)
    env.reset(seed=0)
    reset_s = step_s = 0.0
    ious = []
    # process CPU time, as for scoring, so that the ratios compare like with like
    for ep in range(episodes):
        t0 = time.process_time()
        _, info = env.reset(seed=ep)
        t1 = time.process_time()
        box = info["gt_box"] or (100.0, 100.0, 300.0, 300.0)
        points = info["gt_points"] or ((box[0], box[1]), (box[2], box[3]))
        reply = format_reply(box=[round(v) for v in box], points=[[round(v) for v in p] for p in points[:2]])
        t2 = time.process_time()
        _, _, _, _, step_info = env.step(reply)
        t3 = time.process_time()
        reset_s += t1 - t0
        step_s += t3 - t2
        ious.append(step_info["iou"])
    env.close()
    return {
        f"env_{segmenter}_steps_per_s": episodes / step_s,
        f"env_{segmenter}_resets_per_s": episodes / reset_s,
        f"env_{segmenter}_mean_iou": float(np.mean(ious)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=30_000, help="replies per timing round")
    parser.add_argument("--preset", default="mask-iou", choices=sorted(PRESETS))
    parser.add_argument("--episodes", type=int, default=30, help="env episodes per segmenter")
    parser.add_argument("--skip-env", action="store_true", help="only time parse + reward")
    parser.add_argument("--skip-presets", action="store_true", help="skip the per-preset table (bench_rewards.py)")
    args = parser.parse_args()

    results: dict[str, object] = {"python": platform.python_version(), "cpu_count": os.cpu_count()}
    scoring = bench_scoring(args.replies, args.preset)
    results.update(scoring)
    print(f"parse only:           {scoring['parse_replies_per_s']:>10,.0f} replies/s (one core, CPU time)")
    print(
        f"parse + reward terms: {scoring['parse_reward_replies_per_s']:>10,.0f} replies/s "
        f"(preset {args.preset}, every term computed)"
    )
    results["reward_cost_ratio"] = scoring["parse_replies_per_s"] / scoring["parse_reward_replies_per_s"]
    print(f"  parse + reward takes {results['reward_cost_ratio']:.2f}x the time of parse alone (same run)")
    if not args.skip_presets:
        from bench_rewards import run as bench_presets  # every preset against the upstream rewards

        print("per preset, parse + every term, against the upstream rewards (one core, same run):")
        results.update(bench_presets())
    if not args.skip_env:
        for segmenter in ("box", "grabcut"):
            env_res = bench_env(segmenter, args.episodes)
            results.update(env_res)
            print(
                f"ReasonSegShapes-v0 [{segmenter:>7}]: {env_res[f'env_{segmenter}_steps_per_s']:8.1f} steps/s, "
                f"{env_res[f'env_{segmenter}_resets_per_s']:8.1f} resets/s, "
                f"mean IoU {env_res[f'env_{segmenter}_mean_iou']:.3f} (GT-box reply)"
            )
            ratio = scoring["parse_reward_replies_per_s"] / env_res[f"env_{segmenter}_steps_per_s"]
            results[f"replies_per_{segmenter}_step"] = ratio
            print(f"  {ratio:,.0f} replies are scored in the time of one {segmenter} step (same run)")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()

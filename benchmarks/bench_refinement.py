"""Oracle-click refinement curve: mean IoU after each of 1..K turns on ReasonSegShapes-v0.

The ``oracle-refine`` policy answers turn 1 with the ground truth (``--first gt``) or a grown
ground-truth box (``--first grown-box``), then clicks once per turn at the distance-transform
maximum of the larger error region (false negatives: positive click; false positives: negative).
An episode the oracle stops early (no error left) keeps its last IoU for the remaining turns.
Episodes run through the group vector env, so each turn is one batched segmenter call.

Run (CPU):
    python benchmarks/bench_refinement.py --segmenter grabcut --samples 64 --turns 5
    python benchmarks/bench_refinement.py --segmenter sam2 --samples 8 --turns 5  # tiny, RANDOM weights

With ``--segmenter sam2`` the network is SAM2 hiera-tiny with random weights (no checkpoint is
reachable here): its masks are meaningless, the numbers only show that clicks and ``mask_input``
flow through.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

import segzero_env  # noqa: F401 - registers the env ids
from segzero_env.policies import make_policy


def run_curve(
    segmenter: str,
    samples: int,
    turns: int,
    first: str,
    level: int,
    image_size: int,
    batch: int,
    split: str = "val",
    point_radius: float | None = None,
) -> dict:
    """Score the oracle on the first ``samples`` samples; return the IoU curve and counters."""
    segmenter_kwargs = {}
    if segmenter == "sam2":
        segmenter_kwargs = {"model": "tiny", "random_weights": True, "device": "cpu"}
    if segmenter == "grabcut" and point_radius is not None:
        segmenter_kwargs = {"point_radius": point_radius}
    envs = gym.make_vec(
        "ReasonSegShapes-v0",
        num_envs=batch,
        vectorization_mode="vector_entry_point",
        group_size=1,
        autoreset_mode="NextStep",  # finished episodes are skipped by hand and reset before each batch
        split=split,
        dataset_kwargs={"level": level},
        image_size=image_size,
        segmenter=segmenter,
        segmenter_kwargs=segmenter_kwargs,
        max_turns=turns,
        expose_gt_mask=True,
        reward_weights={"think_format": 0.0, "answer_format": 0.0},
    )
    policy = make_policy("oracle-refine", first=first)
    sample_ids = list(envs.unwrapped.envs[0].dataset.sample_ids)[:samples]
    curves, returns = [], []
    started = time.perf_counter()
    for start in range(0, len(sample_ids), batch):
        ids = sample_ids[start : start + batch]
        ids = ids + [ids[-1]] * (batch - len(ids))
        obs, infos = envs.reset(seed=0, options={"sample_ids": ids})
        done = np.zeros(batch, dtype=bool)
        total = np.zeros(batch)
        history: list[list[float]] = [[] for _ in range(batch)]
        for _ in range(turns):
            observations = [{k: obs[k][i] for k in obs} for i in range(batch)]
            info_list = [env.episode_info(env.episode) for env in envs.unwrapped.envs]
            replies = [
                policy.act_one(o, inf) if not done[i] else ""
                for i, (o, inf) in enumerate(zip(observations, info_list, strict=True))
            ]
            obs, rewards, terminated, _, infos = envs.step(replies)
            for i in range(batch):
                if not done[i]:
                    total[i] += rewards[i]
                    history[i].append(float(infos["iou"][i]))
            done |= terminated
            if done.all():
                break
        for i in range(len(sample_ids[start : start + batch])):
            curve = history[i] + [history[i][-1]] * (turns - len(history[i]))
            curves.append(curve)
            returns.append(total[i])
    curves_arr = np.asarray(curves)
    finals = curves_arr[:, -1]
    envs.close()
    return {
        "segmenter": segmenter,
        "first": first,
        "level": level,
        "segmenter_kwargs": segmenter_kwargs,
        "samples": len(curves),
        "miou_after_turn": [round(float(v), 4) for v in curves_arr.mean(axis=0)],
        "return_equals_final_iou": bool(np.allclose(returns, finals, atol=1e-9)),
        "policy_stats": policy.stats(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    """Parse the arguments, run the curves and print one JSON line per configuration."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segmenter", default="grabcut", choices=["grabcut", "sam2", "box"])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--first", nargs="+", default=["gt", "grown-box"], choices=["gt", "grown-box"])
    parser.add_argument("--levels", type=int, nargs="+", default=[1])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--split", default="val")
    parser.add_argument("--point-radius", type=float, default=None, help="GrabCut click disk radius (px)")
    args = parser.parse_args()
    for level in args.levels:
        for first in args.first:
            result = run_curve(
                args.segmenter,
                args.samples,
                args.turns,
                first,
                level,
                args.image_size,
                args.batch,
                args.split,
                args.point_radius,
            )
            print(json.dumps(result))


if __name__ == "__main__":
    main()

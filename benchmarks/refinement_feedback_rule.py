"""How much can a second turn gain from the mask feedback alone? A fixed rule, no learning.

Turn 1 answers with the ground-truth box jittered by ``N(0, jitter)`` times its width / height
(a policy that localises roughly). Turn 2 restates the box as the bounding box of the turn-1 mask,
grown by ``margin`` px: the same information the env's text feedback gives a policy (``prev_mask``,
"within bbox [...]"), nothing from the ground truth. If this rule lifts the IoU, the feedback holds
something a learner can use; if it cannot, no policy trained on that feedback can either.

With the ``box`` segmenter the mask is the box itself, so the rule gains nothing by construction (a
check of the script). With ``grabcut`` the mask follows the object inside the box, and its bounding
box says where the object lies.

With two or more objects a scene (``--level 1`` and up) a turn-1 answer can also be the WRONG object.
``--choice`` measures that error mode instead (:func:`run_choice_rule`): turn 1 answers with the
exact box of the target or of another object, by a fair coin, and turn 2 follows one of two rules:
the mask rule above (margin 0), or an IoU rule that keeps a mask whose IoU is at least 0.5 and
otherwise answers the other object (with two objects, the target). The mask of a wrong object is a
good mask of that object, so mask feedback cannot tell the choice was wrong; only feedback that
carries the IoU (the env's ``feedback="mask-iou"``, which leaks the ground truth) can.

Run (CPU, seconds)::

    python benchmarks/refinement_feedback_rule.py --segmenters box grabcut --jitters 0.1 0.25 --margins 0 2 4
    python benchmarks/refinement_feedback_rule.py --segmenters grabcut --level 1 --choice
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np

import segzero_env  # noqa: F401 - registers the env ids
from segzero_env.answers import format_refinement, format_reply
from segzero_env.geometry import to_observation_frame_box
from segzero_env.types import Sample


def _box_reply(box: list[int]) -> str:
    cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    return format_reply(box=box, points=[(cx, cy), (cx, cy)], think="rule")


def two_turn_env(segmenter: str, level: int, image_size: int, expose_gt_mask: bool = False) -> gym.Env:
    """The shapes val env with two-turn episodes on which the rules play."""
    return gym.make(
        "ReasonSegShapes-v0",
        split="val",
        segmenter=segmenter,
        image_size=image_size,
        dataset_kwargs={"level": level},
        max_turns=2,
        expose_gt_mask=expose_gt_mask,
    )


def mask_box(mask: np.ndarray, margin: int, side: int) -> list[int] | None:
    """The mask's bounding box grown by ``margin`` px and clipped to the ``side x side`` frame; None if empty.

    >>> m = np.zeros((8, 8), np.uint8); m[2:4, 3:6] = 1
    >>> mask_box(m, 1, 8)
    [2, 1, 6, 4]
    """
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    box = [xs.min() - margin, ys.min() - margin, xs.max() + margin, ys.max() + margin]
    return [int(v) for v in np.clip(box, 0, side - 1)]


def run_rule(
    segmenter: str, jitter: float, margin: int, samples: int, level: int = 0, image_size: int = 56, seed: int = 0
) -> dict:
    """Mean IoU after turn 1 and after turn 2 of the rule on the first ``samples`` val samples."""
    env = two_turn_env(segmenter, level, image_size, expose_gt_mask=True)  # gt mask: turn 1's jittered box
    rng = np.random.default_rng(seed)
    first, second = [], []
    for index in range(samples):
        obs, info = env.reset(options={"index": index})
        ys, xs = np.nonzero(info["gt_mask"] == 1)
        gt = np.array([xs.min(), ys.min(), xs.max(), ys.max()], float)
        size = np.array([gt[2] - gt[0] + 1, gt[3] - gt[1] + 1] * 2)
        noisy = np.clip(gt + rng.normal(0.0, jitter, 4) * size, 0, image_size - 1)
        box = [int(round(v)) for v in (*np.minimum(noisy[:2], noisy[2:]), *np.maximum(noisy[:2], noisy[2:]))]
        obs, _, _, _, info = env.step(_box_reply(box))
        first.append(float(info["iou"]))
        restated = mask_box(obs["prev_mask"], margin, image_size) or box
        _, _, _, _, info = env.step(format_refinement(box=restated, think="rule"))
        second.append(float(info["iou"]))
    env.close()
    return {
        "segmenter": segmenter,
        "jitter": jitter,
        "margin": margin,
        "level": level,
        "image_size": image_size,
        "samples": samples,
        "miou_turn_1": round(float(np.mean(first)), 4),
        "miou_turn_2": round(float(np.mean(second)), 4),
        "gain": round(float(np.mean(second) - np.mean(first)), 4),
    }


def object_boxes(sample: Sample, image_size: int) -> tuple[list[int], list[list[int]]]:
    """The target's box and the other objects' boxes of a shapes sample in the ``S x S`` frame (integers).

    Raises:
        ValueError: The scene has no single target (level 4) or one object only (level 0).
    """
    size = (image_size, sample.width, sample.height)
    boxes = [[int(round(v)) for v in to_observation_frame_box(o["bbox"], *size)] for o in sample.meta["objects"]]
    target = sample.meta["target_index"]
    if target is None:
        raise ValueError(f"sample {sample.sample_id} has no single target (level 4): choices need levels 1-3")
    if len(boxes) < 2:
        raise ValueError(f"sample {sample.sample_id} has one object: choosing between objects needs --level 1 or above")
    return boxes[target], [b for i, b in enumerate(boxes) if i != target]


def run_choice_rule(segmenter: str, samples: int, level: int = 1, image_size: int = 56) -> dict:
    """Mean IoU when turn 1 picks the target or another object by a fair coin, and after each turn-2 rule.

    Both outcomes of the coin are played on every sample and averaged (the coin's expectation, no
    sampling noise). Returns turn 1, turn 2 under the mask rule (the mask's bounding box) and under
    the IoU rule (keep when IoU >= 0.5, else answer the other pick), and turn 1 when the target or the
    other object is always picked.
    """
    env = two_turn_env(segmenter, level, image_size)
    iou: dict[str, list[float]] = {"target": [], "other": [], "mask_rule": [], "iou_rule": []}
    for index in range(samples):
        env.reset(options={"index": index})
        target, others = object_boxes(env.unwrapped.current_sample, image_size)
        picks = {"target": target, "other": others[0]}
        for chosen, box in picks.items():
            env.reset(options={"index": index})
            obs, _, _, _, info = env.step(_box_reply(box))
            first = float(info["iou"])
            iou[chosen].append(first)
            # the mask rule continues this episode; the IoU rule replays turn 1 in a fresh one
            restated = mask_box(obs["prev_mask"], 0, image_size) or box
            _, _, _, _, info = env.step(format_refinement(box=restated, think="rule"))
            iou["mask_rule"].append(float(info["iou"]))
            env.reset(options={"index": index})
            env.step(_box_reply(box))
            switch = picks["other" if chosen == "target" else "target"]
            _, _, _, _, info = env.step(format_refinement(box=box if first >= 0.5 else switch, think="rule"))
            iou["iou_rule"].append(float(info["iou"]))
    env.close()
    mean = {k: float(np.mean(v)) for k, v in iou.items()}
    return {
        "segmenter": segmenter,
        "level": level,
        "image_size": image_size,
        "samples": samples,
        "miou_turn_1": round((mean["target"] + mean["other"]) / 2, 4),
        "miou_turn_2_mask_rule": round(mean["mask_rule"], 4),
        "miou_turn_2_iou_rule": round(mean["iou_rule"], 4),
        "miou_always_target": round(mean["target"], 4),
        "miou_always_other": round(mean["other"], 4),
    }


def main() -> None:
    """Print one JSON line per (segmenter, jitter, margin)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segmenters", nargs="+", default=["box", "grabcut"], choices=["box", "grabcut"])
    parser.add_argument("--jitters", type=float, nargs="+", default=[0.1, 0.25])
    parser.add_argument("--margins", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--level", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=56, help="56: the tiny-learn preset's frame")
    parser.add_argument("--choice", action="store_true", help="The wrong-object error mode (run_choice_rule).")
    args = parser.parse_args()
    if args.choice:
        for segmenter in args.segmenters:
            print(json.dumps(run_choice_rule(segmenter, args.samples, args.level, args.image_size)))
        return
    for segmenter in args.segmenters:
        for jitter in args.jitters:
            for margin in args.margins:
                print(json.dumps(run_rule(segmenter, jitter, margin, args.samples, args.level, args.image_size)))


if __name__ == "__main__":
    main()

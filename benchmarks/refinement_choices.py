r"""A trained refinement policy's turn 2: does it keep its turn-1 object, or switch to another one.

On shapes level 1 (two objects a scene) a tiny policy's turn-1 errors are mostly picks of the wrong
object (``refinement_feedback_rule.py --choice``). This script plays a saved policy's greedy 2-turn
episodes on the first ``--samples`` held-out samples and sorts each episode by its turn-1 pick (the
object whose box the reply's box overlaps best, IoU >= 0.5; otherwise ``whole`` for a box on the
whole image, which covers both objects, or ``neither``) and its turn-2
action (``keep``: the same object or no new box; ``switch``: another object; ``other``: neither).
A policy that has learned to correct itself keeps the target and switches away from the other object;
one that has not does the same whatever its turn 1 was.

Policies are folders saved by ``grpo_refinement.py --keep-policies`` (or any saved tiny-learn
policy). ``--feedback`` is the feedback the episodes show (give each policy its training feedback:
``none`` for the ablation arm).

Usage::

    python benchmarks/refinement_choices.py --policies multi=DIR start=DIR --feedback text-iou \
        --segmenter grabcut --level 1 --samples 64
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PICKS = ("target", "other", "whole", "neither")
ACTIONS = ("keep", "switch", "other")


def pick_of(box: Any, target: list[int], others: list[list[int]], image_size: int) -> str:
    """The object ``box`` overlaps best (box IoU >= 0.5): ``target`` or ``other``; else ``whole`` or ``neither``.

    ``whole``: a box on the whole image (IoU >= 0.7 with it), which covers every object at once.

    >>> pick_of([0, 0, 10, 10], [0, 0, 10, 10], [[20, 20, 30, 30]], 56), pick_of(None, [0, 0, 1, 1], [], 56)
    ('target', 'neither')
    >>> pick_of([4, 3, 55, 55], [0, 0, 10, 10], [[20, 20, 30, 30]], 56)
    'whole'
    """
    from segzero_env.geometry import box_iou

    if box is None:
        return "neither"
    scores = [box_iou(box, target), *(box_iou(box, o) for o in others)]
    best = int(np.argmax(scores))
    if scores[best] >= 0.5:
        return "target" if best == 0 else "other"
    return "whole" if box_iou(box, [0, 0, image_size - 1, image_size - 1]) >= 0.7 else "neither"


def turn_2_action(first: str, second: str | None) -> str:
    """``keep`` (no new box, or the same pick), ``switch`` (the other object) or ``other``.

    >>> turn_2_action("other", "target"), turn_2_action("target", None), turn_2_action("target", "neither")
    ('switch', 'keep', 'other')
    """
    if second is None or second == first:
        return "keep"
    if "neither" in (first, second) or "whole" in (first, second):
        return "other"
    return "switch"


def classify(
    replies_1: list[str], replies_2: list[str], boxes: list[tuple[list[int], list[list[int]]]], image_size: int
) -> Counter:
    """Count ``(turn-1 pick, turn-2 action)`` over episodes; a missing turn-2 reply keeps the box."""
    from segzero_env.parsing import parse_reply

    counts: Counter = Counter()
    for reply_1, reply_2, (target, others) in zip(replies_1, replies_2, boxes, strict=True):
        p1 = parse_reply(reply_1)
        first = pick_of(p1.objects[0].box if p1.ok else None, target, others, image_size)
        p2 = parse_reply(reply_2)
        box_2 = p2.refinement.box if p2.refinement is not None else (p2.objects[0].box if p2.ok else None)
        second = None if box_2 is None else pick_of(box_2, target, others, image_size)
        counts[(first, turn_2_action(first, second))] += 1
    return counts


def play(policy_dir: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Greedy 2-turn episodes of one saved policy: the counts and the mean IoU after each turn."""
    import torch
    from grpo_refinement import _preset_argv, build_parser
    from refinement_feedback_rule import object_boxes
    from segzero_agents.grpo import make_envs, policy_from_args
    from segzero_agents.multiturn_rollout import play_episodes
    from segzero_agents.presets import parse_args
    from segzero_agents.rollout import vision_token_ids

    preset = build_parser().parse_args(["--segmenter", opts.segmenter, "--level", str(opts.level)])
    argv = [*_preset_argv(0, preset), "--model-name-or-path", policy_dir, "--feedback", opts.feedback]
    args = parse_args(argv)
    bundle = policy_from_args(args, torch.device("cpu"))
    envs = make_envs(args, opts.samples, 1, "val", args.dataset, args.data_root, max_turns=2)
    try:
        dataset = envs.envs[0].unwrapped.dataset
        ids = list(dataset.sample_ids)[: opts.samples]
        boxes = [object_boxes(dataset[dataset.index_of(i)], args.image_size) for i in ids]
        traj = play_episodes(
            bundle.model, bundle.processor, envs, ids, seed=0, feedback=args.feedback,
            max_new_tokens=args.max_new_tokens, suppress_token_ids=vision_token_ids(bundle.processor), greedy=True,
        )  # fmt: skip
    finally:
        envs.close()
    second = [""] * len(ids)
    if len(traj.turns) > 1:
        for i, reply in zip(traj.turns[1].members, traj.turns[1].replies, strict=True):
            second[i] = reply
    counts = classify(traj.turns[0].replies, second, boxes, args.image_size)
    return {"counts": counts, "iou_turn_1": float(traj.ious[:, 0].mean()), "iou_turn_2": float(traj.ious[:, -1].mean())}


def table(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table: per policy, the share of each turn-2 action after each turn-1 pick."""
    head = "| policy | turn 1 | turn 2 | " + " | ".join(f"{p}: n, keep / switch / other" for p in PICKS) + " |"
    lines = [head, "|" + "---|" * (3 + len(PICKS))]
    for name, r in results.items():
        cells = []
        for pick in PICKS:
            n = sum(r["counts"][(pick, a)] for a in ACTIONS)
            shares = " / ".join(f"{r['counts'][(pick, a)] / n:.2f}" if n else "-" for a in ACTIONS)
            cells.append(f"{n}, {shares}")
        lines.append(f"| {name} | {r['iou_turn_1']:.3f} | {r['iou_turn_2']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", nargs="+", required=True, help="name=folder of each saved policy")
    parser.add_argument("--feedback", default="text-iou", choices=["image", "text", "text-iou", "none"])
    parser.add_argument("--segmenter", default="grabcut", choices=["box", "grabcut"])
    parser.add_argument("--level", type=int, default=1, choices=[1, 2, 3])
    parser.add_argument("--samples", type=int, default=64)
    opts = parser.parse_args(argv)
    results = {}
    for item in opts.policies:
        name, sep, folder = item.partition("=")
        if not sep or not os.path.isdir(folder):
            parser.error(f"--policies takes name=folder with an existing folder, got {item!r}")
        results[name] = play(folder, opts)
    print(table(results))
    flat = {n: {**r, "counts": {f"{p}/{a}": c for (p, a), c in r["counts"].items()}} for n, r in results.items()}
    print(json.dumps(flat))


if __name__ == "__main__":
    main()

r"""A trained refinement policy's turn 2: does it keep its turn-1 object, or switch to another one.

On shapes level 1 (two objects a scene) a tiny policy's turn-1 errors are mostly picks of the wrong
object (``refinement_feedback_rule.py --choice``). This script plays a saved policy's greedy 2-turn
episodes on the first ``--samples`` held-out samples and sorts each episode by its turn-1 pick (the
object whose box the reply's box overlaps best, IoU >= 0.5; otherwise ``whole`` for a box on the
whole image, which covers both objects, or ``neither``) and its turn-2
action (``keep``: the same object or no new box; ``switch``: another object; ``other``: neither).
A policy that has learned to correct itself keeps the target and switches away from the other object;
one that has not does the same whatever its turn 1 was.

On level 0 (one object a scene) there is no other object to switch to; ``--level 0`` sorts each
episode by what turn 2 did with its box instead (:func:`box_action`): ``keep`` it, restate the turn-1
MASK's bounding box (``mask``: what the text feedback's "within bbox [...]" line gives, as it is or
grown by the ``--refine-targets mask`` warm start's margin), ``grow`` or
``shrink`` it, ``move`` it, or give ``none`` (no new box), with the mean IoU gain of each action, and
counts the turn-1 failures (IoU below 0.5) that turn 2 fixed and the turn-1 successes it broke. Of
the grow / shrink / move boxes, it also counts those that went toward the turn-1 mask's box and those
that went away from it (:func:`mask_approach`).

Policies are folders saved by ``grpo_refinement.py --keep-policies`` (or any saved tiny-learn
policy). ``--feedback`` is the feedback the episodes show (give each policy its training feedback:
``none`` for the ablation arm, ``answer`` for the no-mask arm). ``--swap-masks`` (text feedback) is a
counterfactual: each turn-2 prompt describes another episode's mask (``swapped_feedback.py``), so a
policy that reads its mask should do worse on turn 2, one that does not should not.

Usage::

    python benchmarks/refinement_choices.py --policies multi=DIR start=DIR --feedback text-iou \
        --segmenter grabcut --level 1 --samples 64
    python benchmarks/refinement_choices.py --policies multi=DIR single=DIR --feedback text \
        --segmenter grabcut --level 0 --samples 64
    python benchmarks/refinement_choices.py --policies multi=DIR --feedback text --swap-masks \
        --segmenter grabcut --level 0 --samples 64
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PICKS = ("target", "other", "whole", "neither")
ACTIONS = ("keep", "switch", "other")
BOX_ACTIONS = ("keep", "mask", "grow", "shrink", "move", "none")


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


def episode_boxes(reply_1: str, reply_2: str) -> tuple[Any, Any]:
    """The turn-1 answer's box and the box turn 2 gave (a refinement's or a full answer's); ``None`` for none."""
    from segzero_env.parsing import parse_reply

    p1, p2 = parse_reply(reply_1), parse_reply(reply_2)
    box_1 = p1.objects[0].box if p1.ok else None
    box_2 = p2.refinement.box if p2.refinement is not None else (p2.objects[0].box if p2.ok else None)
    return box_1, box_2


def classify(
    replies_1: list[str], replies_2: list[str], boxes: list[tuple[list[int], list[list[int]]]], image_size: int
) -> Counter:
    """Count ``(turn-1 pick, turn-2 action)`` over episodes; a missing turn-2 reply keeps the box."""
    counts: Counter = Counter()
    for reply_1, reply_2, (target, others) in zip(replies_1, replies_2, boxes, strict=True):
        box_1, box_2 = episode_boxes(reply_1, reply_2)
        first = pick_of(box_1, target, others, image_size)
        second = None if box_2 is None else pick_of(box_2, target, others, image_size)
        counts[(first, turn_2_action(first, second))] += 1
    return counts


def box_action(box_1: Any, box_2: Any, mask_boxes: Sequence[list[int]] = ()) -> str:
    """What a level-0 turn 2 did with its box (``BOX_ACTIONS``); box IoU >= 0.9 counts as the same box.

    ``mask_boxes``: the boxes that count as copying the mask's (:func:`turn_1_mask_boxes`). ``keep`` is
    checked before ``mask``: when the mask fills the box the two are the same answer.

    >>> box_action([10, 10, 30, 30], [10, 10, 30, 30], [[12, 12, 28, 28]])
    'keep'
    >>> box_action([10, 10, 30, 30], [12, 12, 28, 28], [[0, 0, 9, 9], [12, 12, 28, 28]])
    'mask'
    >>> box_action([10, 10, 30, 30], None)
    'none'
    >>> [box_action([10, 10, 30, 30], b) for b in ([5, 5, 35, 35], [14, 14, 26, 26], [30, 30, 50, 50])]
    ['grow', 'shrink', 'move']
    """
    from segzero_env.geometry import box_iou

    if box_2 is None:
        return "none"
    if box_1 is None:
        return "move"
    if box_iou(box_2, box_1) >= 0.9:
        return "keep"
    if any(box_iou(box_2, m) >= 0.9 for m in mask_boxes):
        return "mask"
    if box_2[0] <= box_1[0] and box_2[1] <= box_1[1] and box_2[2] >= box_1[2] and box_2[3] >= box_1[3]:
        return "grow"
    if box_2[0] >= box_1[0] and box_2[1] >= box_1[1] and box_2[2] <= box_1[2] and box_2[3] <= box_1[3]:
        return "shrink"
    return "move"


APPROACH_MARGIN = 0.05
""":func:`mask_approach`: a change of box IoU with the mask's box smaller than this counts as neither way."""


def mask_approach(
    replies_1: list[str], replies_2: list[str], mask_boxes: list[list[list[int]]], margin: float = APPROACH_MARGIN
) -> dict[str, int]:
    """How many grow / shrink / move turn-2 boxes went toward the turn-1 mask's bounding box, and away.

    Only turn-2 boxes that neither keep the box nor copy the mask's are counted. ``toward``: box IoU
    with the mask's (tight) box rose by at least ``margin``; ``away``: fell by at least ``margin``;
    ``n``: all such episodes. It counts the mask use the ``mask`` action misses: a turn 2 that
    shrinks toward the mask without matching its box within IoU 0.9.

    >>> from segzero_env.answers import format_refinement, format_reply
    >>> first = [format_reply(box=[0, 0, 40, 40], points=[[1, 1], [2, 2]])] * 2
    >>> second = [format_refinement(box=[5, 5, 34, 34]), format_refinement(box=[0, 0, 55, 55])]
    >>> mask_approach(first, second, [[[10, 10, 30, 30]]] * 2)
    {'n': 2, 'toward': 1, 'away': 1}
    """
    from segzero_env.geometry import box_iou

    out = {"n": 0, "toward": 0, "away": 0}
    for reply_1, reply_2, boxes in zip(replies_1, replies_2, mask_boxes, strict=True):
        box_1, box_2 = episode_boxes(reply_1, reply_2)
        if not boxes or box_1 is None or box_action(box_1, box_2, boxes) not in ("grow", "shrink", "move"):
            continue
        change = box_iou(box_2, boxes[0]) - box_iou(box_1, boxes[0])
        out["n"] += 1
        out["toward"] += int(change >= margin)
        out["away"] += int(change <= -margin)
    return out


def classify_boxes(
    replies_1: list[str], replies_2: list[str], mask_boxes: list[list[list[int]]], gains: np.ndarray
) -> dict[str, list[float]]:
    """Level 0: the IoU gains of the episodes, grouped by :func:`box_action` (``mask_boxes``: each one's)."""
    out: dict[str, list[float]] = {a: [] for a in BOX_ACTIONS}
    for reply_1, reply_2, boxes, gain in zip(replies_1, replies_2, mask_boxes, gains, strict=True):
        out[box_action(*episode_boxes(reply_1, reply_2), boxes)].append(float(gain))
    return out


def fix_counts(iou_1: np.ndarray, iou_2: np.ndarray, threshold: float = 0.5) -> dict[str, int]:
    """Episodes whose turn 1 failed (IoU below ``threshold``) and how many turn 2 fixed; likewise broken.

    >>> fix_counts(np.array([0.1, 0.2, 0.9, 0.8]), np.array([0.9, 0.1, 0.95, 0.3]))
    {'failed': 2, 'fixed': 1, 'succeeded': 2, 'broken': 1}
    """
    failed, fixed = iou_1 < threshold, iou_2 >= threshold
    return {
        "failed": int(failed.sum()),
        "fixed": int((failed & fixed).sum()),
        "succeeded": int((~failed).sum()),
        "broken": int((~failed & ~fixed).sum()),
    }


def turn_1_mask_boxes(replies_1: list[str], ious_1: np.ndarray, opts: argparse.Namespace, image_size: int) -> list:
    """Each turn-1 mask's boxes, by replaying the turn-1 replies on the same val samples.

    An episode's boxes are its mask's bounding box and that box grown by the ``--refine-targets mask``
    warm start's margin (``grpo_refinement.MASK_MARGIN``): a turn 2 that restates either copies the mask.
    None (an empty list) for an empty mask.

    Raises:
        RuntimeError: If a replayed turn 1 scores another IoU than the episode did (not the same samples).
    """
    from grpo_refinement import MASK_MARGIN
    from refinement_feedback_rule import mask_box, two_turn_env

    env = two_turn_env(opts.segmenter, opts.level, image_size)
    boxes = []
    try:
        for index, (reply, iou) in enumerate(zip(replies_1, ious_1, strict=True)):
            env.reset(options={"index": index})
            obs, _, _, _, info = env.step(reply)
            if abs(float(info["iou"]) - float(iou)) > 1e-6:
                raise RuntimeError(f"sample {index}: replayed turn 1 scores {info['iou']:.4f}, the episode {iou:.4f}")
            mask = obs.get("prev_mask")
            found = [mask_box(mask, margin, image_size) for margin in (0, MASK_MARGIN)] if mask is not None else []
            boxes.append([b for b in found if b is not None])
    finally:
        env.close()
    return boxes


def play(policy_dir: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Greedy 2-turn episodes of one saved policy: the mean IoU after each turn, and the sorted episodes.

    Level 1 and up: ``counts`` of ``(turn-1 pick, turn-2 action)``. Level 0: ``gains`` by
    :func:`box_action` and ``fixes`` (:func:`fix_counts`).
    """
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
    if opts.swap_masks:
        from swapped_feedback import SwappedMasks

        envs = SwappedMasks(envs)
    try:
        dataset = envs.envs[0].unwrapped.dataset
        ids = list(dataset.sample_ids)[: opts.samples]
        boxes = [object_boxes(dataset[dataset.index_of(i)], args.image_size) for i in ids] if opts.level else []
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
    first, ious = traj.turns[0].replies, traj.ious
    result = {"iou_turn_1": float(ious[:, 0].mean()), "iou_turn_2": float(ious[:, -1].mean())}
    if opts.swap_masks:
        result["swapped"] = [envs.changed, envs.swapped]  # prompts the swap changed, of those it took part in
    if opts.level == 0:
        masks = turn_1_mask_boxes(first, ious[:, 0], opts, args.image_size)
        gains = classify_boxes(first, second, masks, ious[:, -1] - ious[:, 0])
        fixes = fix_counts(ious[:, 0], ious[:, -1])
        return {**result, "gains": gains, "fixes": fixes, "approach": mask_approach(first, second, masks)}
    return {**result, "counts": classify(first, second, boxes, args.image_size)}


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


def box_table(results: dict[str, dict[str, Any]]) -> str:
    """Level 0, a markdown table: per policy, each turn-2 action's count and mean IoU gain."""
    head = "| policy | turn 1 | turn 2 | turn 1 < 0.5: n, fixed | turn 1 >= 0.5: n, broken | "
    head += " | ".join(f"{a}: n, gain" for a in BOX_ACTIONS) + " | grow/shrink/move: n, toward / away mask |"
    lines = [head, "|" + "---|" * (6 + len(BOX_ACTIONS))]
    for name, r in results.items():
        f = r["fixes"]
        cells = [f"{f['failed']}, {f['fixed']}", f"{f['succeeded']}, {f['broken']}"]
        cells += [f"{len(g)}, {np.mean(g):+.3f}" if g else "0, -" for g in (r["gains"][a] for a in BOX_ACTIONS)]
        a = r.get("approach")
        cells.append(f"{a['n']}, {a['toward']} / {a['away']}" if a else "-")
        lines.append(f"| {name} | {r['iou_turn_1']:.3f} | {r['iou_turn_2']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _gain_summary(gains: dict[str, list[float]]) -> dict[str, list]:
    """Each action's ``[count, mean gain]`` (``None`` when it never occurs), for the JSON line."""
    return {a: [len(g), float(np.mean(g)) if g else None] for a, g in gains.items()}


def main(argv: list[str] | None = None) -> None:
    from segzero_agents.multiturn_rollout import FEEDBACK_MODES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", nargs="+", required=True, help="name=folder of each saved policy")
    parser.add_argument("--feedback", default="text-iou", choices=list(FEEDBACK_MODES))
    parser.add_argument("--segmenter", default="grabcut", choices=["box", "grabcut"])
    parser.add_argument("--level", type=int, default=1, choices=[0, 1, 2, 3])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--swap-masks", action="store_true", help="Turn-2 prompts describe another episode's mask.")
    opts = parser.parse_args(argv)
    if opts.swap_masks and opts.feedback not in ("text", "text-iou"):
        parser.error("--swap-masks rewrites the text feedback's mask lines: give --feedback text or text-iou")
    results = {}
    for item in opts.policies:
        name, sep, folder = item.partition("=")
        if not sep or not os.path.isdir(folder):
            parser.error(f"--policies takes name=folder with an existing folder, got {item!r}")
        results[name] = play(folder, opts)
    if opts.level == 0:
        print(box_table(results))
        print(json.dumps({n: {**r, "gains": _gain_summary(r["gains"])} for n, r in results.items()}))
        return
    print(table(results))
    flat = {n: {**r, "counts": {f"{p}/{a}": c for (p, a), c in r["counts"].items()}} for n, r in results.items()}
    print(json.dumps(flat))


if __name__ == "__main__":
    main()

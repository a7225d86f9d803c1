"""Baseline for the reward benchmark and the agreement check: the published upstream rules, re-implemented.

This module is NOT part of the package. It re-implements, straightforwardly and in the style of the
published code (one regular expression search and one ``json.loads`` per term, numpy arrays and
``scipy.optimize.linear_sum_assignment`` for the matching), the training rewards of

* Seg-Zero (its strict reward, the one its 3B / 7B configs select): ground truth
  ``<box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points>``;
* VisionReasoner: ground truth a JSON list of ``{"bbox_2d": [...], "point_2d": [...]}``.

It serves two purposes only: the speed baseline ("upstream replies/s") in ``bench_env.py`` and the
reference the package's ``upstream`` rules are checked against, reply by reply
(``tests/test_rewards_upstream.py``). :func:`generate_replies` writes the mutated replies both use.
"""

from __future__ import annotations

import json
import math
import random
import re

import numpy as np

# --------------------------------------------------------------------------- Seg-Zero (strict)

# Pattern strings passed to re.search / re.fullmatch on every call, as the published code does (the re
# module's cache compiles each once).
_LAYOUT = r"<think>.*?</think>\s*<answer>.*?</answer>"
_FIRST_BRACES = r"{[^}]+}"
_GT_BOX = r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>"
_GT_POINTS = r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>"
_ANSWER = r"<answer>\s*(.*?)\s*</answer>"


def sz_think(reply: str) -> float:
    return 1.0 if re.fullmatch(_LAYOUT, reply, re.DOTALL) else 0.0


def sz_format(reply: str) -> float:
    try:
        found = re.search(_FIRST_BRACES, reply)
        if not found:
            return 0.0
        answer = json.loads(found.group(0))
        if any(key not in answer for key in ("bbox", "points_1", "points_2")):
            return 0.0
        if not isinstance(answer["bbox"], list) or len(answer["bbox"]) != 4:
            return 0.0
        for key in ("points_1", "points_2"):
            if not isinstance(answer[key], list) or len(answer[key]) != 2:
                return 0.0
        return 1.0
    except Exception:  # noqa: BLE001 - as published
        return 0.0


def _sz_gt_box(solution: str) -> list[int]:
    found = re.search(_GT_BOX, solution.strip())
    return [int(found.group(i)) for i in range(1, 5)]  # type: ignore[union-attr]


def sz_iou(reply: str, solution: str) -> float:
    try:
        gt = _sz_gt_box(solution)
        found = re.search(_FIRST_BRACES, reply)
        if found:
            answer = json.loads(found.group(0))
            if len(answer["bbox"]) == 4:
                box = answer["bbox"]
                left, top = max(box[0], gt[0]), max(box[1], gt[1])
                right, bottom = min(box[2], gt[2]), min(box[3], gt[3])
                inter = (right - left + 1) * (bottom - top + 1) if left < right and top < bottom else 0
                union = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) + (gt[2] - gt[0] + 1) * (gt[3] - gt[1] + 1)
                if float(inter) / (union - inter) > 0.5:
                    return 1.0
    except Exception:  # noqa: BLE001
        pass
    return 0.0


def sz_l1(reply: str, solution: str) -> float:
    try:
        gt = _sz_gt_box(solution)
        found = re.search(_FIRST_BRACES, reply)
        if found:
            answer = json.loads(found.group(0))
            if len(answer["bbox"]) == 4:
                box = answer["bbox"]
                if (abs(box[0] - gt[0]) + abs(box[1] - gt[1]) + abs(box[2] - gt[2]) + abs(box[3] - gt[3])) / 4 < 10:
                    return 1.0
    except Exception:  # noqa: BLE001
        pass
    return 0.0


def sz_points(reply: str, solution: str) -> float:
    try:
        g = re.search(_GT_POINTS, solution)
        gt = [[int(g.group(1)), int(g.group(2))], [int(g.group(3)), int(g.group(4))]]  # type: ignore[union-attr]
        found = re.search(_FIRST_BRACES, reply)
        if found:
            answer = json.loads(found.group(0))
            box = answer["bbox"] if len(answer["bbox"]) == 4 else None
            a = [int(answer["points_1"][0]), int(answer["points_1"][1])]
            b = [int(answer["points_2"][0]), int(answer["points_2"][1])]
            if box is None:
                raise NameError("no box")
            inside = all(box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3] for p in (a, b))
            if inside:
                d1 = math.sqrt((a[0] - gt[0][0]) ** 2 + (a[1] - gt[0][1]) ** 2) + math.sqrt(
                    (b[0] - gt[1][0]) ** 2 + (b[1] - gt[1][1]) ** 2
                )
                d2 = math.sqrt((a[0] - gt[1][0]) ** 2 + (a[1] - gt[1][1]) ** 2) + math.sqrt(
                    (b[0] - gt[0][0]) ** 2 + (b[1] - gt[0][1]) ** 2
                )
                if min(d1, d2) / 2 < 100:
                    return 1.0
    except Exception:  # noqa: BLE001
        pass
    return 0.0


def seg_zero_terms(reply: str, solution: str) -> dict[str, float]:
    """Seg-Zero's five terms; their sum is its training reward."""
    return {
        "think_format": sz_think(reply),
        "answer_format": sz_format(reply),
        "box_iou": sz_iou(reply, solution),
        "box_l1": sz_l1(reply, solution),
        "points": sz_points(reply, solution),
    }


def seg_zero_solution(box, points) -> str:
    """Seg-Zero's ground-truth string for integer box and points."""
    (a, b), (c, d) = points
    return f"<box>({box[0]},{box[1]}),({box[2]},{box[3]})</box><points>({a},{b}),({c},{d})</points>"


# --------------------------------------------------------------------------- VisionReasoner


def vr_format(reply: str) -> float:
    total = 0.0
    try:
        found = re.search(_ANSWER, reply, re.DOTALL)
        if found:
            answer = json.loads(found.group(1))
            count = len(answer)
            for item in answer:
                got = 0.0
                if "bbox_2d" in item and isinstance(item["bbox_2d"], list) and len(item["bbox_2d"]) == 4:
                    got += 1.0
                if "point_2d" in item and isinstance(item["point_2d"], list) and len(item["point_2d"]) == 2:
                    got += 1.0
                total += got / count
    except Exception:  # noqa: BLE001
        pass
    return (1.0 if re.fullmatch(_LAYOUT, reply, re.DOTALL) else 0.0) + total


def vr_accuracy(reply: str, solution: str) -> float:
    from scipy.optimize import linear_sum_assignment

    result = 0.0
    try:
        gt = json.loads(solution)
        gt_boxes, gt_points = [o["bbox_2d"] for o in gt], [o["point_2d"] for o in gt]
        found = re.search(_ANSWER, reply, re.DOTALL)
        if found:
            answer = json.loads(found.group(1))
            boxes, points = [o["bbox_2d"] for o in answer], [o["point_2d"] for o in answer]
            boxes, points, gt_boxes, gt_points = boxes[:120], points[:120], gt_boxes[:120], gt_points[:120]
            pb, pp, gb, gp = np.array(boxes), np.array(points), np.array(gt_boxes), np.array(gt_points)
            px1, py1, px2, py2 = np.split(pb, 4, axis=1)
            gx1, gy1, gx2, gy2 = (c.T for c in np.split(gb, 4, axis=1))
            with np.errstate(all="ignore"):
                inter = np.maximum(0, np.minimum(px2, gx2) - np.maximum(px1, gx1) + 1) * np.maximum(
                    0, np.minimum(py2, gy2) - np.maximum(py1, gy1) + 1
                )
                union = (px2 - px1 + 1) * (py2 - py1 + 1) + (gx2 - gx1 + 1) * (gy2 - gy1 + 1) - inter
                iou = inter / union
                l1 = np.mean(np.abs(pb[:, np.newaxis, :] - gb[np.newaxis, :, :]), axis=2)
                dist = np.sqrt(np.sum((pp[:, np.newaxis, :] - gp[np.newaxis, :, :]) ** 2, axis=2))
                inside = (pp[:, 0] >= pb[:, 0]) & (pp[:, 0] <= pb[:, 2])
                inside &= (pp[:, 1] >= pb[:, 1]) & (pp[:, 1] <= pb[:, 3])
                hits = (iou > 0.5).astype(float) + (l1 < 10).astype(float)
                hits += ((dist < 30) & inside[:, None]).astype(float)
            cost = 3.0 - hits
            rows, cols = linear_sum_assignment(cost)
            result = (len(rows) * 3.0 - cost[rows, cols].sum()) / max(len(boxes), len(gt_boxes))
    except Exception:  # noqa: BLE001
        pass
    return result


def vr_non_repeat(reply: str) -> float:
    seen: set[str] = set()
    repeats = 0
    for sentence in (s.strip() for s in reply.split(".")):
        if not sentence:
            continue
        if sentence in seen:
            repeats += 1
            if repeats >= 2:
                return 0.0
        seen.add(sentence)
    return 1.0


def vision_reasoner_terms(reply: str, solution: str) -> dict[str, float]:
    """VisionReasoner's three terms; their sum is its training reward."""
    return {
        "vr_format": vr_format(reply),
        "vr_accuracy": vr_accuracy(reply, solution),
        "non_repeat": vr_non_repeat(reply),
    }


def vision_reasoner_solution(objects) -> str:
    """VisionReasoner's ground-truth string for ``[(box, point), ...]``."""
    return json.dumps([{"bbox_2d": list(b), "point_2d": list(p)} for b, p in objects])


# --------------------------------------------------------------------------- reply generator

_THINKS = [
    "The query asks for the object that could roll. The blue circle is the only round shape.",
    "There are two cups. The left one is red. The left one is red. The left one is red.",
    "Look. Look. Look.",
    'A set {of things} is drawn; the target is {"bbox": [1, 2, 3, 4]} maybe.',
    "",
    "It has 2.5 handles. It is red! Is it the cup? Yes.",
    "Same. Same.",
]


def _num(rng: random.Random, v: int):
    roll = rng.random()
    if roll < 0.55:
        return v
    if roll < 0.7:
        return v + rng.choice([0.0, 0.3, 0.5, 0.999, -0.5])
    if roll < 0.75:
        return str(v)
    if roll < 0.78:
        return rng.choice([True, False])
    if roll < 0.81:
        return float("nan")
    if roll < 0.83:
        return None
    if roll < 0.85:
        return rng.choice([float("inf"), 10**20, -(10**9), 2**63])
    return v + rng.randint(-12, 12)


def _dump(value, rng: random.Random) -> str:
    text = json.dumps(value)
    roll = rng.random()
    if roll < 0.08:
        text = text.replace('"', "'")
    elif roll < 0.12:
        text = text.replace(", ", ",").replace(": ", ":")
    elif roll < 0.15:
        text = text.replace("[", "[ ").replace("]", " ]")
    return text


def _wrap(think: str, answer: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        reply = f"<think>{think}</think><answer>{answer}</answer>"
    elif roll < 0.65:
        reply = f"<think>{think}</think>\n<answer>\n{answer}\n</answer>"
    elif roll < 0.7:
        reply = f"<answer>{answer}</answer>"
    elif roll < 0.74:
        reply = f"{think} {answer}"
    elif roll < 0.78:
        reply = f"<think>{think}</think><answer>{answer}"
    elif roll < 0.82:
        reply = f"<think>{think}</think><answer>```json\n{answer}\n```</answer>"
    elif roll < 0.86:
        reply = f"<think>{think}</think><answer>{answer}</answer><answer>{answer}</answer>"
    else:
        reply = f"<think>{think}</think> <answer>{answer}</answer>"
    roll = rng.random()
    if roll < 0.1:
        reply = "\n" + reply
    elif roll < 0.2:
        reply = reply + "\n"
    return reply


def generate_replies(n: int, seed: int = 0, gt_box=(250, 180, 410, 330), gt_points=((300, 250), (360, 260))):
    """``n`` mutated replies, half Seg-Zero-style and half VisionReasoner-style, near the given ground truth.

    Mutations: whitespace around tags and values, single quotes, inverted boxes, floats, numeric strings,
    bools, NaN, null, huge numbers, missing keys, extra keys, ``bbox_2d`` dicts, braces in the reasoning,
    repeated sentences, missing or doubled tags, code fences, long lists.
    """
    rng = random.Random(seed)
    replies = []
    for i in range(n):
        think = rng.choice(_THINKS)
        x1, y1, x2, y2 = (v + rng.randint(-15, 15) for v in gt_box)
        if rng.random() < 0.1:
            x1, x2 = x2, x1
        if rng.random() < 0.05:
            x2 = x1 + rng.choice([0, 1])  # zero- and one-pixel-wide boxes
        (a, b), (c, d) = ((px + rng.randint(-60, 60), py + rng.randint(-60, 60)) for px, py in gt_points)
        if i % 2 == 0:
            value = {
                "bbox": [_num(rng, x1), _num(rng, y1), _num(rng, x2), _num(rng, y2)],
                "points_1": [_num(rng, a), _num(rng, b)],
                "points_2": [_num(rng, c), _num(rng, d)],
            }
            roll = rng.random()
            if roll < 0.06:
                del value["points_2"]
            elif roll < 0.1:
                value["points_1"] = None
            elif roll < 0.13:
                value["bbox"] = value["bbox"][:3]
            elif roll < 0.16:
                value = {"bbox_2d": value["bbox"], "point_2d": value["points_1"]}
            elif roll < 0.18:
                value["points_1"] = value["points_1"] + [1]
            elif roll < 0.2:
                value["bbox"] = "abcd"
            answer = _dump(value, rng)
        else:
            items = []
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                item = {
                    "bbox_2d": [_num(rng, x1), _num(rng, y1), _num(rng, x2), _num(rng, y2)],
                    "point_2d": [_num(rng, a), _num(rng, b)],
                }
                roll = rng.random()
                if roll < 0.06:
                    del item["point_2d"]
                elif roll < 0.1:
                    del item["bbox_2d"]
                elif roll < 0.13:
                    item["point_2d"] = [a]
                elif roll < 0.15:
                    item["label"] = "cup"
                items.append(item)
            roll = rng.random()
            if roll < 0.04:
                value = items[0]
            elif roll < 0.06:
                value = items * 70  # 140 objects: the cut at 120 applies
            elif roll < 0.08:
                value = []
            elif roll < 0.1:
                value = [*items, 5]
            else:
                value = items
            answer = _dump(value, rng)
        replies.append(_wrap(think, answer, rng))
    return replies

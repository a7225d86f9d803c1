"""Reply scoring shared by the single env and the group vector env.

One path turns replies into rewards: parse once, map the answer to the original frame, send
every prompt of an image to the segmenter in one call, then compute every reward term. The
single env scores a batch of one; the vector env scores all replies at once. Both therefore
give identical rewards for the same sample and reply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segzero_env.envs.episode import Episode
from segzero_env.geometry import mask_iou
from segzero_env.parsing import parse_reply
from segzero_env.rewards import RewardInput, RewardPreset, compute_terms
from segzero_env.segmenters.base import Segmenter, SegmentRequest
from segzero_env.types import Box, ObjectAnswer, ParsedReply, Prompt

MAX_OBJECTS_SEGMENTED = 16
"""A reply naming more objects than this has only its first 16 segmented (their union is the prediction)."""


@dataclass(frozen=True)
class Outcome:
    """Everything one scored reply produced.

    Attributes:
        parsed: The parser's result.
        prompts: Prompts sent to the segmenter, in the original frame (empty when nothing was parsed).
        pred_mask: ``H x W`` bool union of the objects' masks, ``None`` when the reply was unusable.
        terms: Every reward term by name.
        reward: The preset's weighted sum.
        intersection: LISA intersection with the ground truth (ignore pixels removed); 0 without a mask.
        union: LISA union; 0 without a mask.
        iou: LISA per-sample IoU (``1.0`` when both are empty); ``0.0`` without a mask.
    """

    parsed: ParsedReply
    prompts: tuple[Prompt, ...]
    pred_mask: np.ndarray | None
    terms: dict[str, float]
    reward: float
    intersection: int
    union: int
    iou: float


def _round_half_up(value: float) -> float:
    return float(math.floor(value + 0.5))


def _clip(value: float, high: int) -> float:
    return min(max(value, 0.0), float(high))


def object_to_prompt(obj: ObjectAnswer, episode: Episode) -> Prompt:
    """Map one answer object from the ``S`` frame to the original frame (``x * W / S`` rounded half up, clipped)."""
    sx, sy = episode.scale
    w_max, h_max = episode.sample.width - 1, episode.sample.height - 1
    x1, y1, x2, y2 = obj.box
    box: Box = (
        _clip(_round_half_up(x1 * sx), w_max),
        _clip(_round_half_up(y1 * sy), h_max),
        _clip(_round_half_up(x2 * sx), w_max),
        _clip(_round_half_up(y2 * sy), h_max),
    )
    points = np.array(
        [[_clip(_round_half_up(x * sx), w_max), _clip(_round_half_up(y * sy), h_max)] for x, y in obj.points],
        dtype=np.float32,
    ).reshape(-1, 2)
    return Prompt(box=box, points=points, point_labels=np.ones(len(points), dtype=np.int64))


def answer_to_prompts(parsed: ParsedReply, episode: Episode) -> tuple[Prompt, ...]:
    """Prompts for every usable object of a parsed reply (none when parsing failed)."""
    if not parsed.ok:
        return ()
    return tuple(object_to_prompt(obj, episode) for obj in parsed.objects[:MAX_OBJECTS_SEGMENTED])


def segment_prompt_groups(
    segmenter: Segmenter, episodes: Sequence[Episode], prompt_groups: Sequence[Sequence[Prompt]]
) -> list[np.ndarray | None]:
    """Segment every reply's prompts, one segmenter request per distinct episode; return each reply's union mask.

    Replies that share an :class:`Episode` object (a GRPO group) share one request, so the
    segmenter sees all of that image's prompts in a single call.
    """
    buckets: dict[int, tuple[Episode, list[Prompt]]] = {}
    spans: list[tuple[int, int, int] | None] = []
    for episode, prompts in zip(episodes, prompt_groups, strict=True):
        if not prompts:
            spans.append(None)
            continue
        _, bucket = buckets.setdefault(id(episode), (episode, []))
        spans.append((id(episode), len(bucket), len(prompts)))
        bucket.extend(prompts)
    requests = [SegmentRequest(e.sample.image, tuple(b), e.sample.sample_id) for e, b in buckets.values()]
    results = dict(zip(buckets, segmenter.segment_many(requests), strict=True)) if requests else {}
    return [None if span is None else np.any(results[span[0]][span[1] : span[1] + span[2]], axis=0) for span in spans]


def score_replies(
    episodes: Sequence[Episode], replies: Sequence[Any], segmenter: Segmenter, preset: RewardPreset
) -> list[Outcome]:
    """Parse, segment and reward each reply against its episode. Never raises on reply content."""
    parsed = [parse_reply(reply) for reply in replies]
    prompt_groups = [answer_to_prompts(p, e) for p, e in zip(parsed, episodes, strict=True)]
    masks = segment_prompt_groups(segmenter, episodes, prompt_groups)
    outcomes = []
    for reply, result, prompts, pred_mask, episode in zip(replies, parsed, prompt_groups, masks, episodes, strict=True):
        gt_mask = episode.sample.mask
        terms = compute_terms(
            RewardInput(
                reply=reply if isinstance(reply, str) else "",
                parsed=result,
                gt_box=episode.gt_box,
                gt_points=episode.gt_points,
                pred_mask=pred_mask,
                gt_mask=gt_mask,
                image_size=episode.image_size,
            )
        )
        if gt_mask is None:
            intersection, union, iou = 0, 0, 0.0
        else:
            empty = np.zeros(gt_mask.shape, dtype=bool)
            intersection, union = mask_iou(empty if pred_mask is None else pred_mask, gt_mask)
            iou = 1.0 if union == 0 else intersection / union
        outcomes.append(
            Outcome(
                parsed=result,
                prompts=prompts,
                pred_mask=pred_mask,
                terms=terms,
                reward=preset.combine(terms),
                intersection=int(intersection),
                union=int(union),
                iou=float(iou),
            )
        )
    return outcomes


def answer_to_info(parsed: ParsedReply) -> dict[str, Any]:
    """A plain-data view of a parsed answer for ``info``: ``schema`` (``None`` when unusable) and ``objects``.

    Always a dict (never ``None``) so that vector envs can batch it key by key.
    """
    return {
        "schema": parsed.schema.value if parsed.ok and parsed.schema is not None else None,
        "objects": [
            {"box": [float(v) for v in o.box], "points": [[float(x), float(y)] for x, y in o.points]}
            for o in (parsed.objects if parsed.ok else ())
        ],
    }

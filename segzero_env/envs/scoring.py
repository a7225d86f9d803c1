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
from segzero_env.envs.refinement import TurnState, expected_schema, merge_reply
from segzero_env.geometry import mask_iou
from segzero_env.parsing import parse_reply
from segzero_env.rewards import RewardInput, RewardPreset, compute_terms
from segzero_env.segmenters.base import Segmenter, SegmentRequest
from segzero_env.types import AnswerSchema, Box, ObjectAnswer, ParsedReply, Prompt

MAX_OBJECTS_SEGMENTED = 16
"""A reply naming more objects than this has only its first 16 segmented (their union is the prediction)."""


@dataclass(frozen=True)
class Outcome:
    """Everything one scored reply produced.

    Attributes:
        parsed: The parser's result; on refinement turns, merged with the current answer (its
            ``objects`` are the whole current answer, accumulated clicks included).
        prompts: Prompts sent to the segmenter, in the original frame (empty when nothing was parsed;
            on a refinement turn that changed nothing, the prompts of the kept prediction).
        pred_mask: ``H x W`` bool union of the objects' masks, ``None`` when the reply was unusable.
        terms: Every reward term by name.
        reward: The preset's weighted sum.
        intersection: LISA intersection with the ground truth (ignore pixels removed); 0 without a mask.
        union: LISA union; 0 without a mask.
        iou: LISA per-sample IoU (``1.0`` when both are empty); ``0.0`` without a mask.
        logits: Per-object low-res logits of the prediction (refinement turns only; ``None`` entries
            when the segmenter has none).
        changed: Whether the segmenter ran for this reply (False when a refinement turn kept the prediction).
    """

    parsed: ParsedReply
    prompts: tuple[Prompt, ...]
    pred_mask: np.ndarray | None
    terms: dict[str, float]
    reward: float
    intersection: int
    union: int
    iou: float
    logits: tuple[np.ndarray | None, ...] = ()
    changed: bool = True


def _round_half_up(value: float) -> float:
    return float(math.floor(value + 0.5))


def _clip(value: float, high: int) -> float:
    return min(max(value, 0.0), float(high))


def object_to_prompt(obj: ObjectAnswer, episode: Episode, mask_input: np.ndarray | None = None) -> Prompt:
    """Map one answer object from the ``S`` frame to the original frame (``x * W / S`` rounded half up, clipped).

    Positive points get label 1, then negative points label 0; ``mask_input`` is passed through.
    """
    sx, sy = episode.scale
    w_max, h_max = episode.sample.width - 1, episode.sample.height - 1
    x1, y1, x2, y2 = obj.box
    box: Box = (
        _clip(_round_half_up(x1 * sx), w_max),
        _clip(_round_half_up(y1 * sy), h_max),
        _clip(_round_half_up(x2 * sx), w_max),
        _clip(_round_half_up(y2 * sy), h_max),
    )
    clicks = (*obj.points, *obj.negative_points)
    points = np.array(
        [[_clip(_round_half_up(x * sx), w_max), _clip(_round_half_up(y * sy), h_max)] for x, y in clicks],
        dtype=np.float32,
    ).reshape(-1, 2)
    labels = np.concatenate([np.ones(len(obj.points)), np.zeros(len(obj.negative_points))]).astype(np.int64)
    return Prompt(box=box, points=points, point_labels=labels, mask_input=mask_input)


def answer_to_prompts(
    parsed: ParsedReply, episode: Episode, mask_inputs: Sequence[np.ndarray | None] = ()
) -> tuple[Prompt, ...]:
    """Prompts for every usable object of a parsed reply (none when parsing failed).

    ``mask_inputs[i]`` (refinement turns) goes with object ``i``'s prompt.
    """
    if not parsed.ok:
        return ()
    return tuple(
        object_to_prompt(obj, episode, mask_inputs[i] if i < len(mask_inputs) else None)
        for i, obj in enumerate(parsed.objects[:MAX_OBJECTS_SEGMENTED])
    )


def segment_prompt_groups(
    segmenter: Segmenter, episodes: Sequence[Episode], prompt_groups: Sequence[Sequence[Prompt]]
) -> list[np.ndarray | None]:
    """Segment every reply's prompts, one segmenter request per distinct episode; return each reply's union mask.

    Replies that share an :class:`Episode` object (a GRPO group) share one request, so the
    segmenter sees all of that image's prompts in a single call.
    """
    return [mask for mask, _ in segment_prompt_groups_with_logits(segmenter, episodes, prompt_groups, False)]


def segment_prompt_groups_with_logits(
    segmenter: Segmenter,
    episodes: Sequence[Episode],
    prompt_groups: Sequence[Sequence[Prompt]],
    with_logits: bool = True,
) -> list[tuple[np.ndarray | None, tuple[np.ndarray | None, ...]]]:
    """:func:`segment_prompt_groups` plus each prompt's low-res logits (``None`` where the backend has none).

    Logits come from ``segment_many_with_logits`` when the segmenter has it and ``with_logits`` is set.
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
    many_with_logits = getattr(segmenter, "segment_many_with_logits", None) if with_logits else None
    masks: dict[int, np.ndarray] = {}
    logits: dict[int, np.ndarray | None] = {}
    if requests and callable(many_with_logits):
        for key, output in zip(buckets, many_with_logits(requests), strict=True):
            masks[key], logits[key] = output.masks, output.low_res_logits
    elif requests:
        masks = dict(zip(buckets, segmenter.segment_many(requests), strict=True))
    out: list[tuple[np.ndarray | None, tuple[np.ndarray | None, ...]]] = []
    for span in spans:
        if span is None:
            out.append((None, ()))
            continue
        key, start, count = span
        chunk = logits.get(key)
        per_prompt = tuple(None if chunk is None else chunk[j] for j in range(start, start + count))
        out.append((np.any(masks[key][start : start + count], axis=0), per_prompt))
    return out


def score_replies(
    episodes: Sequence[Episode],
    replies: Sequence[Any],
    segmenter: Segmenter,
    preset: RewardPreset,
    states: Sequence[TurnState] | None = None,
    answer_schema: AnswerSchema = AnswerSchema.SEG_ZERO,
) -> list[Outcome]:
    """Parse, segment and reward each reply against its episode. Never raises on reply content.

    Args:
        episodes: One episode per reply (replies of one GRPO group share the episode object).
        replies: The replies.
        segmenter: Segments every image's prompts in one batched call.
        preset: Combines the terms into :attr:`Outcome.reward`.
        states: Multi-turn episodes only: each reply's :class:`~segzero_env.envs.refinement.TurnState`.
            Replies are then merged into the current answer (clicks accumulate, previous logits go
            back as ``mask_input``), a reply that changes nothing keeps the previous prediction,
            and ``answer_format`` accepts the refinement grammar after turn 1. ``None``: single turn.
        answer_schema: The schema the prompt template asks for; ``answer_format`` rewards it.
    """
    parsed = [parse_reply(reply) for reply in replies]
    n = len(parsed)
    if states is None:
        scored = parsed
        schemas = [answer_schema] * n
        prompt_groups = [answer_to_prompts(p, e) for p, e in zip(parsed, episodes, strict=True)]
        masks = segment_prompt_groups(segmenter, episodes, prompt_groups)
        logit_groups: list[tuple[np.ndarray | None, ...]] = [()] * n
        changed = [True] * n
    else:
        merged = [merge_reply(p, s) for p, s in zip(parsed, states, strict=True)]
        scored = [m.parsed for m in merged]
        schemas = [expected_schema(p, s.turn, answer_schema) for p, s in zip(parsed, states, strict=True)]
        changed = [m.changed for m in merged]
        prompt_groups = [
            answer_to_prompts(m.parsed, e, m.mask_inputs) if m.changed else ()
            for m, e in zip(merged, episodes, strict=True)
        ]
        segmented = segment_prompt_groups_with_logits(segmenter, episodes, prompt_groups)
        masks, logit_groups = [], []
        for i, state in enumerate(states):
            if changed[i] or state.turn == 0:
                masks.append(segmented[i][0])
                logit_groups.append(segmented[i][1])
            else:
                masks.append(state.pred_mask)
                logit_groups.append(state.logits)
                prompt_groups[i] = state.prompts
    outcomes = []
    for i, (reply, result, prompts, pred_mask, episode) in enumerate(
        zip(replies, scored, prompt_groups, masks, episodes, strict=True)
    ):
        gt_mask = episode.sample.mask
        if gt_mask is None:
            intersection, union, iou = 0, 0, 0.0
        else:
            intersection, union = mask_iou(pred_mask, gt_mask)  # None counts as an empty prediction
            iou = 1.0 if union == 0 else intersection / union
        terms = compute_terms(
            RewardInput.fast(
                reply=reply if isinstance(reply, str) else "",
                parsed=result,
                gt_box=episode.gt_box,
                gt_points=episode.gt_points,
                pred_mask=pred_mask,
                gt_mask=gt_mask,
                image_size=episode.image_size,
                expected_schema=schemas[i],
                gt_objects=episode.gt_objects,
                no_target=episode.no_target,
                mask_iou=iou,  # counted once, above
            ),
            preset.rules,
        )
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
                logits=tuple(logit_groups[i]),
                changed=changed[i],
            )
        )
    return outcomes


def answer_to_info(parsed: ParsedReply) -> dict[str, Any]:
    """A plain-data view of a parsed answer for ``info``: ``schema``, ``no_object`` and ``objects``.

    ``schema`` is the answer's schema whenever the reply was read (the empty answer ``[]`` and a
    refinement without a box included), ``None`` for a parse failure; ``no_object`` is True for the
    empty answer (nothing in the image fits the query). Always a dict (never ``None``) with the same
    keys, so that vector envs can batch it key by key.

    >>> from segzero_env.parsing import parse_reply
    >>> answer_to_info(parse_reply("<answer>[]</answer>"))
    {'schema': 'vision-reasoner', 'no_object': True, 'objects': []}
    >>> answer_to_info(parse_reply("<answer>[1]</answer>"))
    {'schema': None, 'no_object': False, 'objects': []}
    """
    return {
        "schema": parsed.schema.value if parsed.failure is None and parsed.schema is not None else None,
        "no_object": parsed.no_object,
        "objects": [
            {"box": [float(v) for v in o.box], "points": [[float(x), float(y)] for x, y in o.points]}
            for o in (parsed.objects if parsed.ok else ())
        ],
    }

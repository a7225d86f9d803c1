"""Multi-turn refinement: what an episode carries from turn to turn, and how a reply changes it.

Pure functions over a frozen :class:`TurnState`; the env and the group vector env both call them
through :func:`segzero_env.envs.scoring.score_replies`, so refinement has one implementation.

Merge rules (``S``-frame coordinates, one episode):

- Turn 1 (no answer yet): the reply is scored exactly as in a single-turn episode.
- Later turns: clicks ACCUMULATE over the episode. A refinement reply adds its
  ``positive_points`` / ``negative_points`` to the first object of the current answer; its
  ``bbox`` (if any) replaces that object's box. A plain answer (Seg-Zero, VisionReasoner or
  grounding JSON without refinement keys) replaces the objects; its first object keeps the clicks
  accumulated so far, plus its own points. Exact duplicate clicks are dropped.
- The segmenter runs again only when the answer changed. A reply that cannot be used (parse
  failure, or a box-less refinement before any box was given) and a bare ``{"stop": true}``
  leave the prediction, its IoU and its logits as they were.
- Each object's previous low-resolution logits (SAM2) are sent back as ``Prompt.mask_input``
  with its new prompt; backends without logits get ``None``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from segzero_env.types import AnswerSchema, FailureReason, ObjectAnswer, ParsedReply, Point, Prompt

FEEDBACK_LEVELS = ("mask", "mask-iou", "answer")
"""``"mask"``: the policy sees its mask only (no ground-truth leak). ``"mask-iou"``: also its IoU (leaks).
``"answer"``: its previous answer only, never the mask (the ablation that asks what the mask adds)."""

TURN_REWARDS = ("gain", "final")
"""``"gain"``: the mask-IoU term pays the IoU gain of each turn. ``"final"``: it pays the IoU once, at the end."""

COARSE_GRID = 8
"""Side of the coarse occupancy map written into the feedback text."""


@dataclass(frozen=True)
class TurnState:
    """One episode's refinement state after ``turn`` scored answers.

    Attributes:
        turn: Answers scored so far (0 at reset).
        objects: The current answer's objects (``S`` frame), accumulated clicks included.
        logits: Per-object ``256 x 256`` low-res logits of the current masks (``None`` per object
            when the segmenter has none).
        prompts: The prompts (original frame) that made the current prediction.
        pred_mask: The current prediction (``H x W`` bool, original frame), ``None`` before any usable answer.
        mask_obs: The current prediction at ``S x S`` (uint8 0/1), ``None`` before the first answer.
        iou: LISA IoU of the current prediction (0 before any answer).
        iou_history: IoU after each scored turn.
    """

    turn: int = 0
    objects: tuple[ObjectAnswer, ...] = ()
    logits: tuple[np.ndarray | None, ...] = ()
    prompts: tuple[Prompt, ...] = ()
    pred_mask: np.ndarray | None = None
    mask_obs: np.ndarray | None = None
    iou: float = 0.0
    iou_history: tuple[float, ...] = ()


@dataclass(frozen=True)
class MergedReply:
    """A reply merged into the current answer.

    Attributes:
        parsed: The reply as scored: its ``objects`` are the merged current answer (a failure when unusable).
        changed: Whether the segmenter must run again (otherwise the prediction is kept).
        mask_inputs: Previous logits to send with each object's prompt.
    """

    parsed: ParsedReply
    changed: bool
    mask_inputs: tuple[np.ndarray | None, ...] = ()


def _unique(points: Sequence[Point]) -> tuple[Point, ...]:
    seen: dict[Point, None] = {}
    for point in points:
        seen.setdefault((float(point[0]), float(point[1])), None)
    return tuple(seen)


def merge_reply(parsed: ParsedReply, state: TurnState) -> MergedReply:
    """Merge a parsed reply into the episode's current answer (see the module docstring)."""
    if state.turn == 0:
        return MergedReply(parsed, changed=parsed.ok)
    if parsed.failure is not None:
        return MergedReply(parsed, changed=False)
    previous = state.objects[0] if state.objects else None
    refinement = parsed.refinement
    if (
        refinement is not None
        and refinement.box is None
        and not refinement.positive_points
        and not (refinement.negative_points)
    ):
        # A bare stop: keep the current answer (scored for its format) and its mask.
        return MergedReply(dataclasses.replace(parsed, objects=state.objects), changed=False)
    if refinement is not None and not parsed.objects:
        if previous is None:
            detail = "refinement without a bbox, but no box has been given yet; the first usable answer needs a bbox"
            return MergedReply(
                dataclasses.replace(parsed, failure=FailureReason.MISSING_KEY, detail=detail), changed=False
            )
        first = ObjectAnswer(
            box=previous.box,
            points=_unique(previous.points + refinement.positive_points),
            negative_points=_unique(previous.negative_points + refinement.negative_points),
        )
        objects = (first, *state.objects[1:])
    else:
        new_first = parsed.objects[0]
        carried_pos = previous.points if previous is not None else ()
        carried_neg = previous.negative_points if previous is not None else ()
        first = ObjectAnswer(
            box=new_first.box,
            points=_unique(carried_pos + new_first.points),
            negative_points=_unique(carried_neg + new_first.negative_points),
        )
        objects = (first, *parsed.objects[1:])
    mask_inputs = tuple(state.logits[i] if i < len(state.logits) else None for i in range(len(objects)))
    return MergedReply(dataclasses.replace(parsed, objects=objects), changed=True, mask_inputs=mask_inputs)


def expected_schema(parsed: ParsedReply, turn: int, first_turn: AnswerSchema = AnswerSchema.SEG_ZERO) -> AnswerSchema:
    """The schema ``answer_format`` rewards: the template's on turn 1; it or the refinement grammar later."""
    if turn > 0 and parsed.schema is AnswerSchema.REFINE:
        return AnswerSchema.REFINE
    return first_turn


def mask_to_obs(mask: np.ndarray | None, image_size: int) -> np.ndarray:
    """An original-frame mask at ``S x S`` as uint8 (bool becomes 0/1, labels are kept; nearest neighbour).

    ``None`` gives zeros.
    """
    if mask is None:
        return np.zeros((image_size, image_size), dtype=np.uint8)
    return cv2.resize(mask.astype(np.uint8), (image_size, image_size), interpolation=cv2.INTER_NEAREST)


def describe_objects_info(objects: Sequence[ObjectAnswer]) -> list[dict[str, list]]:
    """Plain data for ``info["current_answer"]``: ``box``, ``points`` and ``negative_points`` per object."""
    return [
        {
            "box": [float(v) for v in obj.box],
            "points": [[float(x), float(y)] for x, y in obj.points],
            "negative_points": [[float(x), float(y)] for x, y in obj.negative_points],
        }
        for obj in objects
    ]


def mask_iou_credit(mode: str, iou: float, prev_iou: float, final: bool) -> float:
    """The value the ``mask_iou`` term is paid at on one turn.

    ``"gain"``: ``iou - prev_iou`` (the episode's credits sum to the final IoU, since the IoU before
    the first answer is 0). ``"final"``: ``iou`` on the episode's last turn, else 0.

    >>> mask_iou_credit("gain", 0.75, 0.5, final=False), mask_iou_credit("final", 0.75, 0.5, final=False)
    (0.25, 0.0)
    """
    if mode == "gain":
        return iou - prev_iou
    if mode == "final":
        return iou if final else 0.0
    raise ValueError(f"turn_reward must be one of {TURN_REWARDS}, got {mode!r}")


def _coarse_map(mask_obs: np.ndarray, grid: int = COARSE_GRID) -> list[str]:
    side = mask_obs.shape[0]
    edges = np.linspace(0, side, grid + 1).round().astype(int)
    rows = []
    for r in range(grid):
        row = ""
        for c in range(grid):
            cell = mask_obs[edges[r] : max(edges[r + 1], edges[r] + 1), edges[c] : max(edges[c + 1], edges[c] + 1)]
            share = float(cell.mean()) if cell.size else 0.0
            row += "#" if share > 0.5 else "+" if share > 0 else "."
        rows.append(row)
    return rows


def _fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def describe_answer(objects: Sequence[ObjectAnswer]) -> str:
    """One line per object: box, positive and negative clicks (``S`` frame)."""
    if not objects:
        return "none (no usable answer yet)"
    lines = []
    for obj in objects:
        positives = ", ".join(_fmt(p) for p in obj.points) or "none"
        negatives = ", ".join(_fmt(p) for p in obj.negative_points) or "none"
        lines.append(f"bbox {_fmt(obj.box)}; positive points [{positives}]; negative points [{negatives}]")
    return "\n".join(lines)


def describe_mask(mask: np.ndarray) -> list[str]:
    """The feedback lines that describe an ``S x S`` mask: its share of the image, its box and a coarse map."""
    if not mask.any():
        return ["The current mask is empty."]
    side = mask.shape[0]
    ys, xs = np.nonzero(mask)
    return [
        f"The current mask covers {mask.mean():.1%} of the image, within bbox "
        f"[{xs.min()}, {ys.min()}, {xs.max()}, {ys.max()}]. Coarse map ({COARSE_GRID} x {COARSE_GRID} cells of the "
        f"{side} x {side} image; '#' mostly inside the mask, '+' partly, '.' outside):",
        *_coarse_map(mask),
    ]


def feedback_text(state: TurnState, max_turns: int, feedback: str) -> str:
    """The text rendering of the current prediction shown before each refinement turn ("" on turn 1).

    It names the turn, restates the current answer, describes the mask coarsely (share of the
    image, its box in the ``S`` frame, an occupancy map), gives the IoU only when
    ``feedback="mask-iou"``, and states the refinement grammar and the stop answer. With
    ``feedback="answer"`` the mask is not described: the turn, the answer and the grammar only.
    """
    if state.turn == 0:
        return ""
    lines = [f"Turn {state.turn + 1} of {max_turns}. Your current answer:", describe_answer(state.objects)]
    if feedback != "answer":
        lines += describe_mask(state.mask_obs if state.mask_obs is not None else np.zeros((1, 1), np.uint8))
    if feedback == "mask-iou":
        lines.append(f"IoU of the current mask with the target: {state.iou:.3f}.")
    lines.append(
        'To refine, reply <think> ... </think> <answer>{"positive_points": [[x, y]], "negative_points": [[x, y]]}'
        "</answer> with clicks in this image's pixel frame (positive: add this region, negative: remove it; "
        '"bbox" may restate the box). To keep the current mask, reply <answer>{"stop": true}</answer>.'
    )
    return "\n".join(lines)

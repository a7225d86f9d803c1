"""Refinement episodes for the GRPO trainer: K-turn trajectories, their update, metrics and evaluation.

Each of the ``N = P * G`` group members plays a whole trajectory in the group vector env made with
``max_turns=K``: its reply, then the env's feedback turn, then its next reply, until it stops
(``{"stop": true}``) or reaches ``K`` turns. Every turn is ONE ``envs.step`` for the whole group, so
the segmenter runs once per turn for all members (with each member's previous logits as
``mask_input``, as the env does).

What the policy sees on turn ``k > 1`` (``feedback``):

- ``"image"``: the observation with its current mask shaded in (:func:`overlay_mask`), and the
  turn-1 prompt followed by one short line (:func:`image_feedback_line`). One image per row, as on
  turn 1, so the prompt stays as short as turn 1's.
- ``"text"``: the plain image and the env's own prompt for the turn (``info["prompt"]``: the
  template followed by the env's feedback text: the current answer, the mask's share, box and
  8 x 8 occupancy map, and the refinement grammar). For models that cannot see a second image.
- ``"text-iou"``: ``"text"`` with the IoU of the current mask added (the env's ``feedback="mask-iou"``).
  It LEAKS the ground truth: a study setting that shows whether the trainer learns to act on
  feedback that says how good the mask is, not a deployable policy's input.
- ``"answer"``: the ablation of the mask: the env's prompt for the turn with its previous answer but
  no word of the mask (the env's ``feedback="answer"``), so the policy knows it is on turn ``k`` and
  what it answered, not what the segmenter made of it.
- ``"none"``: the ablation: the turn-1 image and prompt again, so the policy cannot see what it did.

Each turn's context is the image, the prompt and the feedback of that turn, not the earlier turns'
text: the env's state (current answer and mask) is what the feedback shows, so the turn is Markov
and the prompt does not grow with ``K``. Replies are trained; prompts (feedback included) never are.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from segzero_agents.grpo_math import (
    immediate_turn_advantages,
    trajectory_advantages,
    turn_advantages,
    turn_token_weights,
    weighted_grpo_loss,
)
from segzero_agents.rollout import Rollout, reply_log_probs, sample_replies, select_rows

FEEDBACK_MODES = ("image", "text", "text-iou", "answer", "none")
ENV_FEEDBACK = {"text-iou": "mask-iou", "answer": "answer"}
"""The env's ``feedback`` level each mode needs, where it is not the default ``"mask"``."""
TURN_ADVANTAGES = ("trajectory", "per-turn", "immediate")
SHADE_COLOUR = (255, 0, 255)
"""Magenta: the colour blended into the masked pixels of the feedback image."""


def overlay_mask(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with the mask's pixels blended ``alpha`` of the way towards :data:`SHADE_COLOUR`.

    >>> img = np.zeros((1, 2, 3), np.uint8); out = overlay_mask(img, np.array([[1, 0]]))
    >>> out[0, 0].tolist(), out[0, 1].tolist()
    ([128, 0, 128], [0, 0, 0])
    """
    out = image.astype(np.float32)
    inside = mask.astype(bool)
    out[inside] = (1 - alpha) * out[inside] + alpha * np.asarray(SHADE_COLOUR, np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def image_feedback_line(turn: int, max_turns: int) -> str:
    """The line added to the turn-1 prompt in ``"image"`` feedback (``turn`` counts answers so far).

    >>> image_feedback_line(1, 3)[:55]
    'Turn 2 of 3: your current mask is shaded in the image. '
    """
    return (
        f"Turn {turn + 1} of {max_turns}: your current mask is shaded in the image. Answer again to correct it, "
        'or reply <answer>{"stop": true}</answer> to keep it.'
    )


def turn_inputs(
    obs: dict[str, Any], info: dict[str, Any], first_prompts: list[str], rows: list[int], feedback: str, max_turns: int
) -> tuple[list[np.ndarray], list[str]]:
    """Images and prompts the policy sees this turn, for sub-envs ``rows`` (see the module docstring)."""
    if feedback not in FEEDBACK_MODES:
        raise ValueError(f"feedback={feedback!r}: use one of {FEEDBACK_MODES}")
    images, prompts = [], []
    for i in rows:
        turn = int(obs["turn"][i])
        image = obs["image"][i]
        if turn == 0 or feedback == "none":
            images.append(image)
            prompts.append(first_prompts[i])
        elif feedback == "image":
            images.append(overlay_mask(image, obs["prev_mask"][i]))
            prompts.append(f"{first_prompts[i]}\n{image_feedback_line(turn, max_turns)}")
        else:
            images.append(image)
            prompts.append(str(info["prompt"][i]))
    return images, prompts


@dataclass
class TurnBatch:
    """The replies written on one turn.

    Attributes:
        turn: 0-based turn index.
        members: The sub-env (trajectory) index of each row.
        rollout: Prompts (with the turn's feedback) and reply tokens of those rows.
        replies: The decoded replies.
    """

    turn: int
    members: list[int]
    rollout: Rollout
    replies: list[str]


@dataclass
class Trajectories:
    """``N`` trajectories of at most ``K`` turns (arrays are ``N x K``, turns after the end are 0).

    Attributes:
        turns: One :class:`TurnBatch` per turn played by anyone.
        rewards: The env's reward of each turn.
        turn_mask: 1 where the member replied on that turn.
        ious: IoU after each turn, carried forward after the trajectory ended.
        intersections, unions: Pixel counts of the current prediction after each turn (carried forward).
        lengths: Reply tokens of each turn.
        unusable: 1 where that turn's reply could not be parsed.
        stopped: ``N`` bools: the trajectory ended with a stop reply.
        terms: Sum over played turns of each reward term, per trajectory (``name -> N``).
        segmenter_steps: ``envs.step`` calls made (one per turn, for the whole group).
    """

    turns: list[TurnBatch]
    rewards: np.ndarray
    turn_mask: np.ndarray
    ious: np.ndarray
    intersections: np.ndarray
    unions: np.ndarray
    lengths: np.ndarray
    unusable: np.ndarray
    stopped: np.ndarray
    terms: dict[str, np.ndarray] = field(default_factory=dict)
    segmenter_steps: int = 0

    @property
    def turns_used(self) -> np.ndarray:
        """Turns each trajectory played."""
        return self.turn_mask.sum(axis=1)


@torch.no_grad()
def _greedy_replies(
    model: Any,
    prompt: dict[str, Any],
    *,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    suppress: list[int],
) -> Rollout:
    from segzero_agents.grpo_math import completion_mask

    prompt = {k: v.to(model.device) for k, v in prompt.items()}
    was_training = model.training
    model.eval()
    try:
        sequences = model.generate(
            **prompt,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            suppress_tokens=suppress,
        )
    finally:
        model.train(was_training)
    ids = sequences[:, prompt["input_ids"].shape[1] :]
    mask = completion_mask(ids, eos_token_id)
    ended = (ids == eos_token_id).any(dim=1)
    return Rollout(prompt, ids.masked_fill(mask == 0, pad_token_id), mask, ~ended, tuple(suppress))


def play_episodes(
    model: Any,
    processor: Any,
    envs: Any,
    sample_ids: list[str],
    *,
    seed: int,
    feedback: str,
    max_new_tokens: int,
    suppress_token_ids: list[int],
    greedy: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    to_env_frame: Any = None,
    write_replies: Callable[[dict[str, Any], int, list[int], int], Rollout] | None = None,
) -> Trajectories:
    """Play one K-turn trajectory per sub-env of ``envs`` (a group vector env with ``max_turns=K``).

    Turn 1 samples ``G`` replies per sample (group members share the prompt); later turns sample
    one reply per member still playing, from its own feedback. Members that have stopped write
    nothing (the env ignores their slot), so they add no rows, no tokens and no reward.

    Args:
        model: The (unwrapped) policy.
        processor: Its processor.
        envs: The group vector env (``autoreset_mode="NextStep"``, ``max_turns=K``).
        sample_ids: One sample id per block of ``G`` sub-envs.
        seed: The reset seed.
        feedback: One of :data:`FEEDBACK_MODES` (module docstring).
        max_new_tokens: Reply length limit per turn.
        suppress_token_ids: Tokens never sampled (the vision placeholders).
        greedy: Greedy replies (evaluation) instead of sampling.
        temperature: Sampling temperature.
        top_p: Nucleus mass.
        to_env_frame: Optional ``reply -> reply`` rewriting relative-frame coordinates for the env.
        write_replies: Optional ``(prompt_batch, repeats, members, turn) -> Rollout`` used instead of
            ``model`` (a scripted policy, e.g. in tests).
    """
    from segzero_env.hf.chat import batch_inputs, decode_replies

    n, g = envs.num_envs, envs.group_size
    k_max = int(envs.envs[0].max_turns)
    tokenizer = processor.tokenizer
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    obs, info = envs.reset(seed=seed, options={"sample_ids": list(sample_ids)})
    first_prompts = [str(p) for p in info["prompt"]]
    shape = (n, k_max)
    out = Trajectories(
        turns=[],
        rewards=np.zeros(shape),
        turn_mask=np.zeros(shape, dtype=np.int64),
        ious=np.zeros(shape),
        intersections=np.zeros(shape),
        unions=np.zeros(shape),
        lengths=np.zeros(shape, dtype=np.int64),
        unusable=np.zeros(shape, dtype=np.int64),
        stopped=np.zeros(n, dtype=bool),
    )
    done = np.zeros(n, dtype=bool)
    for turn in range(k_max):
        rows = [int(i) for i in np.flatnonzero(~done)]
        images, prompts = turn_inputs(obs, info, first_prompts, rows, feedback, k_max)
        if turn == 0 and not greedy:
            # members share the sample and the prompt: encode it once per block, sample G replies
            batch = dict(batch_inputs(processor, images[::g], prompts[::g]))
            repeats = g
        else:
            batch = dict(batch_inputs(processor, images, prompts))
            repeats = 1
        if write_replies is not None:
            rollout = write_replies(batch, repeats, rows, turn)
        elif greedy:
            rollout = _greedy_replies(
                model, batch, max_new_tokens=max_new_tokens, eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id, suppress=suppress_token_ids,
            )  # fmt: skip
        else:
            rollout = sample_replies(
                model, batch, repeats, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, suppress_token_ids=suppress_token_ids,
            )  # fmt: skip
        replies = decode_replies(processor, rollout.completion_ids, rollout.completion_mask)
        if to_env_frame is not None:
            replies = [to_env_frame(r) for r in replies]
        actions = [""] * n
        for i, reply in zip(rows, replies, strict=True):
            actions[i] = reply
        obs, rewards, terminated, truncated, info = envs.step(actions)
        out.segmenter_steps += 1
        out.turns.append(TurnBatch(turn, rows, rollout, replies))
        lengths = rollout.completion_mask.sum(dim=1).tolist()
        for j, i in enumerate(rows):
            out.rewards[i, turn] = rewards[i]
            out.turn_mask[i, turn] = 1
            out.lengths[i, turn] = lengths[j]
            out.ious[i, turn] = info["iou"][i]
            out.intersections[i, turn] = info["intersection"][i]
            out.unions[i, turn] = info["union"][i]
            out.unusable[i, turn] = info["parse_failure"][i] is not None
            if bool(info["stopped"][i]):
                out.stopped[i] = True
            for name, values in info["reward_terms"].items():
                if not name.startswith("_"):
                    out.terms.setdefault(name, np.zeros(n))[i] += float(values[i])
        for i in np.flatnonzero(done):
            # a finished trajectory keeps its last prediction
            out.ious[i, turn] = out.ious[i, turn - 1]
            out.intersections[i, turn] = out.intersections[i, turn - 1]
            out.unions[i, turn] = out.unions[i, turn - 1]
        done |= np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
        if done.all():
            for later in range(turn + 1, k_max):
                out.ious[:, later] = out.ious[:, turn]
                out.intersections[:, later] = out.intersections[:, turn]
                out.unions[:, later] = out.unions[:, turn]
            break
    return out


def refinement_advantages(traj: Trajectories, group_size: int, kind: str, scaling: str) -> torch.Tensor:
    """``N x K`` advantages: trajectory-level GRPO, the per-turn (reward-to-go) variant or the immediate one."""
    rewards = torch.as_tensor(traj.rewards, dtype=torch.float32)
    mask = torch.as_tensor(traj.turn_mask)
    if kind == "trajectory":
        return trajectory_advantages(rewards, mask, group_size, scaling)  # type: ignore[arg-type]
    if kind == "per-turn":
        return turn_advantages(rewards, mask, group_size, scaling)  # type: ignore[arg-type]
    if kind == "immediate":
        return immediate_turn_advantages(rewards, mask, group_size, scaling)  # type: ignore[arg-type]
    raise ValueError(f"turn_advantage={kind!r}: use one of {TURN_ADVANTAGES}")


def _ref_log_probs(policy: Any, ref_model: Any | None, uses_lora: bool, rollout: Rollout, rows: list[int]) -> Any:
    prompt = select_rows(rollout.prompt, rows)
    ids, mask = rollout.completion_ids[rows], rollout.completion_mask[rows]
    with torch.no_grad():
        if uses_lora:
            with policy.disable_adapter():
                return reply_log_probs(policy, prompt, ids, mask, rollout.excluded_token_ids)
        return reply_log_probs(ref_model, prompt, ids, mask, rollout.excluded_token_ids)


def refinement_update(
    accelerator: Any,
    model: Any,
    ref_model: Any | None,
    uses_lora: bool,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    traj: Trajectories,
    advantages: torch.Tensor,
    args: Any,
) -> dict[str, float]:
    """One optimizer step (``num_iterations`` of them) on every reply token of every turn.

    The loss is the weighted sum of :func:`~segzero_agents.grpo_math.weighted_grpo_loss` over all
    turns and micro-batches, with :func:`~segzero_agents.grpo_math.turn_token_weights`, so the
    accumulated gradient is the full batch's whatever the micro-batch size.
    """
    policy = accelerator.unwrap_model(model)
    weights = turn_token_weights(
        torch.as_tensor(traj.lengths), torch.as_tensor(traj.turn_mask), args.loss_aggregation, args.max_new_tokens
    )
    chunks: list[tuple[TurnBatch, list[int]]] = []
    for batch in traj.turns:
        rows = len(batch.members)
        for s in range(0, rows, args.micro_batch_size):
            chunks.append((batch, list(range(s, min(s + args.micro_batch_size, rows)))))

    def _inputs(batch: TurnBatch, rows: list[int]) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
        r = batch.rollout
        return select_rows(r.prompt, rows), r.completion_ids[rows], r.completion_mask[rows]

    ref = [None] * len(chunks)
    if args.kl_coef != 0.0:
        ref = [_ref_log_probs(policy, ref_model, uses_lora, b.rollout, rows) for b, rows in chunks]
    old = [None] * len(chunks)
    if args.num_iterations > 1:
        with torch.no_grad():
            old = [reply_log_probs(model, *_inputs(b, rows), b.rollout.excluded_token_ids) for b, rows in chunks]

    from segzero_agents.grpo import _null_context

    model.train()
    totals = {"loss": 0.0, "policy": 0.0, "kl": 0.0, "clip_frac": 0.0, "grad_norm": 0.0}
    n_rows = sum(len(rows) for _, rows in chunks)
    for _ in range(args.num_iterations):
        for c, (batch, rows) in enumerate(chunks):
            members = [batch.members[r] for r in rows]
            adv = advantages[members, batch.turn].to(batch.rollout.completion_ids.device)
            w = weights[members, batch.turn].to(batch.rollout.completion_ids.device)
            sync = accelerator.no_sync(model) if c < len(chunks) - 1 else _null_context()
            with sync:
                prompt, ids, mask = _inputs(batch, rows)
                logp = reply_log_probs(model, prompt, ids, mask, batch.rollout.excluded_token_ids)
                loss, stats = weighted_grpo_loss(
                    logp, logp.detach() if old[c] is None else old[c], ref[c], adv, mask, w,
                    clip_eps=args.clip_eps, kl_coef=args.kl_coef,
                )  # fmt: skip
                accelerator.backward(loss)
            share = len(rows) / n_rows / args.num_iterations
            totals["loss"] += float(loss.detach()) / args.num_iterations
            totals["policy"] += stats["policy"] / args.num_iterations
            totals["kl"] += stats["kl"] * share
            totals["clip_frac"] += stats["clip_frac"] * share
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        totals["grad_norm"] = math.nan if grad_norm is None else float(grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return totals


def refinement_metrics(traj: Trajectories, group_size: int, prefix: str = "turns/") -> dict[str, float]:
    """Per-turn IoU, stop rate and turns used of a batch of trajectories (see ``docs/agent.md``).

    Keys: ``{prefix}iou_<k>`` (mean IoU after turn ``k``, a finished trajectory counting with its
    final prediction), ``{prefix}iou_gain`` (last minus first), ``{prefix}stop_rate`` (trajectories
    that ended with a stop reply), ``{prefix}turns_used`` (mean turns played), ``{prefix}played_<k>``
    (share of trajectories that replied on turn ``k``), ``{prefix}unusable_rate_<k>``.
    """
    k_max = traj.ious.shape[1]
    out: dict[str, float] = {}
    for k in range(k_max):
        out[f"{prefix}iou_{k + 1}"] = float(traj.ious[:, k].mean())
        played = traj.turn_mask[:, k].astype(bool)
        out[f"{prefix}played_{k + 1}"] = float(played.mean())
        out[f"{prefix}unusable_rate_{k + 1}"] = float(traj.unusable[played, k].mean()) if played.any() else 0.0
    out[f"{prefix}iou_gain"] = float((traj.ious[:, -1] - traj.ious[:, 0]).mean())
    out[f"{prefix}stop_rate"] = float(traj.stopped.mean())
    out[f"{prefix}turns_used"] = float(traj.turns_used.mean())
    return out


def refinement_train_step(
    accelerator: Any,
    model: Any,
    ref_model: Any | None,
    uses_lora: bool,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    processor: Any,
    envs: Any,
    sample_ids: list[str],
    step: int,
    args: Any,
    suppress: list[int],
    to_env_frame: Any = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Play, score, update and measure one step of refinement episodes; returns metrics and reply rows."""
    t0 = time.perf_counter()
    traj = play_episodes(
        accelerator.unwrap_model(model), processor, envs, sample_ids, seed=args.seed + step,
        feedback=args.feedback, max_new_tokens=args.max_new_tokens, suppress_token_ids=suppress,
        temperature=args.temperature, top_p=args.top_p, to_env_frame=to_env_frame,
    )  # fmt: skip
    t1 = time.perf_counter()
    g = args.group_size
    advantages = refinement_advantages(traj, g, args.turn_advantage, args.advantage_scaling)
    losses = refinement_update(accelerator, model, ref_model, uses_lora, optimizer, scheduler, traj, advantages, args)
    t2 = time.perf_counter()
    returns = (traj.rewards * traj.turn_mask).sum(axis=1)
    lengths = traj.lengths[traj.turn_mask.astype(bool)]
    truncated = np.concatenate([b.rollout.truncated.cpu().numpy() for b in traj.turns])
    metrics = {
        "rewards/mean": float(returns.mean()),
        "rewards/std": float(returns.std()),
        "rewards/frac_zero_std_groups": float((returns.reshape(-1, g).std(axis=1) == 0).mean()),
        "replies/length": float(lengths.mean()),
        "replies/truncated_rate": float(truncated.mean()),
        "replies/unusable_rate": float(traj.unusable[traj.turn_mask.astype(bool)].mean()),
        "env/iou": float(traj.ious[:, -1].mean()),
        "rollout/prompts": float(len(sample_ids)),
        "rollout/replies": float(traj.turn_mask.sum()),
        **{f"rewards/{name}": float(v.mean()) for name, v in traj.terms.items()},
        **refinement_metrics(traj, g),
    }
    from segzero_agents.distributed import mean_across_processes

    metrics = mean_across_processes(accelerator, metrics)
    losses = mean_across_processes(accelerator, losses)
    metrics.update({f"losses/{k}": v for k, v in losses.items() if k in ("loss", "policy", "kl")})
    metrics.update({"policy/clip_frac": losses["clip_frac"], "policy/grad_norm": losses["grad_norm"]})
    metrics.update({"time/rollout_s": t1 - t0, "time/update_s": t2 - t1, "time/step_s": t2 - t0})
    rows = []
    for batch in traj.turns:
        for i, reply in zip(batch.members, batch.replies, strict=True):
            rows.append(
                {
                    "sample_id": f"{sample_ids[i // g]} t{batch.turn + 1}",
                    "reward": float(traj.rewards[i, batch.turn]),
                    "iou": float(traj.ious[i, batch.turn]),
                    "failure": "unusable" if traj.unusable[i, batch.turn] else None,
                    "reply": reply,
                }
            )
    return metrics, rows


@torch.no_grad()
def evaluate_refinement(
    policy: Any, processor: Any, args: Any, eval_envs: Any, accelerator: Any | None = None
) -> dict[str, float]:
    """Greedy K-turn episodes on the first ``eval_samples`` samples: gIoU after every turn.

    Keys: ``eval/giou`` and ``eval/ciou`` (after the last turn, LISA definition), ``eval/giou_turn_<k>``,
    ``eval/stop_rate``, ``eval/turns_used``, ``eval/unusable_rate`` (turn 1), ``eval/n``, and
    ``eval/boxed`` / ``eval/distinct_boxes`` (turn 1's boxes, see
    :func:`~segzero_agents.evaluation.box_diversity`). With several processes each evaluates a share
    of the samples and the sums are merged.
    """
    from segzero_agents.evaluation import box_diversity, eval_blocks, first_boxes
    from segzero_agents.rollout import vision_token_ids

    k_max = int(eval_envs.envs[0].max_turns)
    sums = np.zeros(k_max + 6)  # giou per turn, inter, union, stops, turns, unusable, n
    suppress = vision_token_ids(processor)
    boxes: list[tuple[float, ...]] = []
    for m, block in eval_blocks(eval_envs, args, accelerator):
        traj = play_episodes(
            policy, processor, eval_envs, block, seed=args.seed, feedback=args.feedback,
            max_new_tokens=args.max_new_tokens, suppress_token_ids=suppress, greedy=True,
        )  # fmt: skip
        sums[:k_max] += traj.ious[:m].sum(axis=0)
        first = traj.turns[0]
        boxes += first_boxes([r for member, r in zip(first.members, first.replies, strict=True) if member < m])
        sums[k_max] += traj.intersections[:m, -1].sum()
        sums[k_max + 1] += traj.unions[:m, -1].sum()
        sums[k_max + 2] += traj.stopped[:m].sum()
        sums[k_max + 3] += traj.turns_used[:m].sum()
        sums[k_max + 4] += traj.unusable[:m, 0].sum()
        sums[k_max + 5] += m
    if accelerator is not None and accelerator.num_processes > 1:
        sums = accelerator.reduce(torch.tensor(sums, device=accelerator.device), "sum").cpu().numpy()
    n = max(sums[k_max + 5], 1.0)
    out = {f"eval/giou_turn_{k + 1}": float(sums[k] / n) for k in range(k_max)}
    out.update(
        {
            "eval/giou": float(sums[k_max - 1] / n),
            "eval/ciou": float(sums[k_max] / max(sums[k_max + 1], 1.0)),
            "eval/stop_rate": float(sums[k_max + 2] / n),
            "eval/turns_used": float(sums[k_max + 3] / n),
            "eval/unusable_rate": float(sums[k_max + 4] / n),
            "eval/n": float(sums[k_max + 5]),
            **box_diversity(boxes, accelerator),
        }
    )
    return out

"""The maths of GRPO as small pure functions: advantages, token log-probs, clipped loss, KL.

Names follow the GRPO paper (DeepSeekMath, arXiv 2402.03300) and its descendants. Every function
takes and returns torch tensors and has no side effects, so each can be unit-tested alone.

Shapes: ``N`` replies (``N = P * G`` for ``P`` prompts and group size ``G``), ``T`` reply tokens
(right-padded), ``V`` vocabulary size. ``mask`` is ``N x T`` with 1 on reply tokens.

>>> import torch
>>> group_advantages(torch.tensor([1.0, 0.0, 2.0, 2.0]), group_size=2)
tensor([ 0.7071, -0.7071,  0.0000,  0.0000])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

Aggregation = Literal["grpo", "dr_grpo", "dapo"]
"""How per-token losses become one number:

- ``grpo``: mean over each reply's tokens, then mean over replies (the original; long replies
  get less weight per token, which biases towards long wrong answers).
- ``dr_grpo``: sum over all tokens divided by ``N * max_length`` (Dr. GRPO; a constant normaliser,
  no length bias).
- ``dapo``: sum over all tokens divided by the number of reply tokens in the batch (DAPO's
  token-level mean; each token weighs the same).
"""

AdvantageScaling = Literal["group", "none"]
"""``group``: divide by the group's reward std (+ eps), as GRPO and Seg-Zero do. ``none``: only
subtract the group mean (Dr. GRPO: std scaling over-weights groups that are nearly all equal)."""


def group_advantages(
    rewards: torch.Tensor, group_size: int, scaling: AdvantageScaling = "group", eps: float = 1e-6
) -> torch.Tensor:
    """Group-relative advantages ``(r - mean_group) / (std_group + eps)``.

    Consecutive blocks of ``group_size`` rewards belong to one prompt. A group whose rewards are all
    equal gets exactly zero advantage, hence no policy gradient.

    Args:
        rewards: ``N`` rewards, ``N`` a multiple of ``group_size``.
        group_size: ``G`` (at least 2: one reply has no group to compare with).
        scaling: ``"group"`` divides by the group's (unbiased) std, ``"none"`` does not.
        eps: Added to the std so equal-reward groups do not divide by zero.

    Returns:
        ``N`` advantages, same dtype as ``rewards``.

    Raises:
        ValueError: On a bad ``group_size``, length or scaling name.
    """
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 for group-relative advantages, got {group_size}")
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be 1-D with a length divisible by group_size={group_size}, got {tuple(rewards.shape)}"
        )
    grouped = rewards.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scaling == "group":
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    elif scaling != "none":
        raise ValueError(f"unknown advantage scaling {scaling!r}: use 'group' or 'none'")
    return centred.reshape(-1)


def shuffle_within_groups(rewards: torch.Tensor, group_size: int, generator: torch.Generator) -> torch.Tensor:
    """Permute the rewards inside each group: a control with GRPO's compute and noise but no signal.

    Each group keeps its own rewards (so its mean, spread and advantage sizes are unchanged), but which
    reply earned which is random. A policy trained on these should not improve; if it does, the gain
    came from something other than the reward (the warm start continuing, a drift, the evaluation).

    >>> rewards = torch.tensor([0.0, 1.0, 2.0, 5.0, 6.0, 7.0])
    >>> shuffled = shuffle_within_groups(rewards, 3, torch.Generator().manual_seed(0))
    >>> sorted(shuffled[:3].tolist()), sorted(shuffled[3:].tolist())
    ([0.0, 1.0, 2.0], [5.0, 6.0, 7.0])
    """
    grouped = rewards.view(-1, group_size)
    order = torch.stack([torch.randperm(group_size, generator=generator) for _ in range(grouped.shape[0])])
    return grouped.gather(1, order.to(rewards.device)).reshape(-1)


def token_log_probs(
    logits: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor | None = None,
    excluded_ids: Sequence[int] | None = None,
) -> torch.Tensor:
    """Log-probability of each chosen token: ``log softmax(logits)[ids]``.

    Computed as ``logit[id] - logsumexp(logits)`` so the full ``N x T x V`` log-softmax is never
    materialised (the vocabulary is 150k for Qwen).

    ``excluded_ids`` are tokens the sampler could never draw (``generate(suppress_tokens=...)`` sets
    their logits to ``-inf``): they are left out of the normaliser too, so these are the log-probs
    of the distribution the replies were actually sampled from. Leaving them in scores every reply
    under a different policy than the one that wrote it, and each update then moves probability
    mass onto tokens no reply can ever contain.

    >>> logits, ids = torch.zeros(1, 1, 4), torch.tensor([[1]])
    >>> token_log_probs(logits, ids).exp(), token_log_probs(logits, ids, excluded_ids=[3]).exp()
    (tensor([[0.2500]]), tensor([[0.3333]]))

    Args:
        logits: ``N x T x V`` logits that predict ``ids`` (already shifted: ``logits[:, t]`` scores ``ids[:, t]``).
        ids: ``N x T`` token ids.
        mask: Optional ``N x T`` 0/1 mask; masked positions are set to 0.
        excluded_ids: Token ids the sampler suppressed (never sampled).

    Returns:
        ``N x T`` log-probabilities in float32.
    """
    logits = logits.float()
    if excluded_ids:
        logits = logits.index_fill(-1, torch.tensor(list(excluded_ids), device=logits.device), float("-inf"))
    chosen = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    logp = chosen - torch.logsumexp(logits, dim=-1)
    if mask is not None:
        logp = logp * mask.to(logp.dtype)
    return logp


def completion_mask(ids: torch.Tensor, eos_token_id: int | list[int]) -> torch.Tensor:
    """Mask of each reply's tokens: everything up to and including the first end-of-turn token.

    >>> completion_mask(torch.tensor([[5, 2, 9, 9], [5, 6, 7, 8]]), eos_token_id=2)
    tensor([[1, 1, 0, 0],
            [1, 1, 1, 1]])
    """
    eos_ids = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id), device=ids.device)
    is_eos = torch.isin(ids, eos_ids)
    # a position is kept when no eos appeared strictly before it
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return (eos_before == 0).long()


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of ``KL(policy || reference)``: ``exp(ref - logp) - (ref - logp) - 1``.

    Unbiased for samples drawn from the policy, always >= 0, and exactly 0 where the two agree
    (Schulman's "k3"; verl calls it ``low_var_kl``).

    >>> kl_k3(torch.tensor([-1.0]), torch.tensor([-1.0]))
    tensor([0.])
    """
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, aggregation: Aggregation = "grpo", max_length: int | None = None
) -> torch.Tensor:
    """Reduce an ``N x T`` per-token quantity to a scalar with one of the three aggregations.

    Args:
        per_token: ``N x T`` values.
        mask: ``N x T`` 0/1 reply-token mask.
        aggregation: ``grpo``, ``dr_grpo`` or ``dapo`` (see :data:`Aggregation`).
        max_length: The constant length ``dr_grpo`` divides by (the max reply length); defaults to ``T``.
    """
    mask = mask.to(per_token.dtype)
    masked = per_token * mask
    if aggregation == "grpo":
        per_reply = masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return per_reply.mean()
    if aggregation == "dapo":
        return masked.sum() / mask.sum().clamp(min=1.0)
    if aggregation == "dr_grpo":
        length = per_token.shape[1] if max_length is None else max_length
        return masked.sum() / (per_token.shape[0] * length)
    raise ValueError(f"unknown aggregation {aggregation!r}: use 'grpo', 'dr_grpo' or 'dapo'")


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip_eps: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO-clip loss ``-min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)`` and the ratio.

    Args:
        logp: ``N x T`` log-probs under the policy being updated (with gradient).
        old_logp: ``N x T`` log-probs under the policy that sampled the replies (no gradient).
        advantages: ``N`` advantages, one per reply (broadcast over its tokens).
        clip_eps: The clip range epsilon.

    Returns:
        ``(loss, ratio)``, both ``N x T``.
    """
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.unsqueeze(1).to(logp.dtype)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    return -torch.minimum(unclipped, clipped), ratio


def clip_fraction(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_eps: float = 0.2) -> float:
    """Fraction of reply tokens whose objective was clipped (no gradient flowed through them).

    A token is clipped when its ratio left the trust region in the direction its advantage pushes:
    ``ratio > 1 + eps`` with ``A > 0``, or ``ratio < 1 - eps`` with ``A < 0``.
    """
    adv = advantages.unsqueeze(1)
    clipped = ((ratio > 1.0 + clip_eps) & (adv > 0)) | ((ratio < 1.0 - clip_eps) & (adv < 0))
    m = mask.bool()
    return float(clipped[m].float().mean()) if m.any() else 0.0


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    kl_coef: float = 5e-3,
    aggregation: Aggregation = "grpo",
    max_length: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Compute the full GRPO objective: clipped surrogate plus ``kl_coef`` times the k3 KL, aggregated.

    Args:
        logp: ``N x T`` current log-probs (with gradient).
        old_logp: ``N x T`` sampling-time log-probs.
        ref_logp: ``N x T`` reference-model log-probs, or ``None`` when ``kl_coef`` is 0.
        advantages: ``N`` advantages.
        mask: ``N x T`` reply-token mask.
        clip_eps: Clip range.
        kl_coef: KL penalty coefficient (beta).
        aggregation: See :data:`Aggregation`.
        max_length: ``dr_grpo``'s constant length.

    Returns:
        ``(loss, stats)`` with stats ``policy`` (surrogate alone), ``kl`` (mean per-token KL) and
        ``clip_frac``.
    """
    surrogate, ratio = clipped_surrogate(logp, old_logp, advantages, clip_eps)
    per_token = surrogate
    kl_value = 0.0
    if ref_logp is not None and kl_coef != 0.0:
        kl = kl_k3(logp, ref_logp.detach())
        per_token = per_token + kl_coef * kl
        kl_value = float(aggregate(kl.detach(), mask, "dapo"))
    elif ref_logp is not None:
        kl_value = float(aggregate(kl_k3(logp.detach(), ref_logp), mask, "dapo"))
    loss = aggregate(per_token, mask, aggregation, max_length)
    stats = {
        "policy": float(aggregate(surrogate.detach(), mask, aggregation, max_length)),
        "kl": kl_value,
        "clip_frac": clip_fraction(ratio.detach(), advantages, mask, clip_eps),
    }
    return loss, stats


# ---------------------------------------------------------------------------------------------
# Refinement episodes: K turns per group member.
#
# Layout: ``N`` trajectories (``N = P * G``) of at most ``K`` turns. ``turn_rewards`` and
# ``turn_mask`` are ``N x K``: the env's reward of each turn, and 1 where the member replied on that
# turn (a member that stopped on turn ``k`` has zeros from ``k + 1`` on; no row exists for them, so
# nothing is padded into the loss). Every reply token of every played turn is trained; the feedback
# is part of the next turn's prompt, never of a reply.
# ---------------------------------------------------------------------------------------------


def trajectory_returns(turn_rewards: torch.Tensor, turn_mask: torch.Tensor) -> torch.Tensor:
    """Each trajectory's return: the sum of the rewards of the turns it played (``N x K`` -> ``N``).

    With the env's ``turn_reward="gain"`` the mask-IoU credits telescope to the final IoU, so the
    return is the final IoU plus every turn's format terms minus the turn costs.

    >>> trajectory_returns(torch.tensor([[0.5, 0.2], [0.7, 9.0]]), torch.tensor([[1, 1], [1, 0]]))
    tensor([0.7000, 0.7000])
    """
    return (turn_rewards * turn_mask.to(turn_rewards.dtype)).sum(dim=1)


def trajectory_advantages(
    turn_rewards: torch.Tensor,
    turn_mask: torch.Tensor,
    group_size: int,
    scaling: AdvantageScaling = "group",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Trajectory-level GRPO: the group-relative advantage of each return, given to every turn played.

    Args:
        turn_rewards: ``N x K`` rewards.
        turn_mask: ``N x K`` 0/1, 1 where the member replied on that turn.
        group_size: ``G``; consecutive blocks of ``G`` trajectories share one sample.
        scaling: As in :func:`group_advantages`.
        eps: As in :func:`group_advantages`.

    Returns:
        ``N x K`` advantages: ``A_i`` on each turn member ``i`` played, 0 elsewhere.

    >>> trajectory_advantages(torch.tensor([[0.0, 1.0], [0.5, 0.0]]), torch.tensor([[1, 1], [1, 0]]), 2)
    tensor([[ 0.7071,  0.7071],
            [-0.7071,  0.0000]])
    """
    adv = group_advantages(trajectory_returns(turn_rewards, turn_mask), group_size, scaling, eps)
    return torch.where(turn_mask.bool(), adv.unsqueeze(1), torch.zeros((), dtype=adv.dtype))


def _turn_shape(turn_rewards: torch.Tensor, turn_mask: torch.Tensor, group_size: int) -> tuple[int, int]:
    """``(N, K)`` of equal ``N x K`` rewards and mask with ``N`` a multiple of ``group_size >= 2``; else raise."""
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 for group-relative advantages, got {group_size}")
    n, k = turn_rewards.shape
    if n % group_size or turn_mask.shape != turn_rewards.shape:
        raise ValueError(
            f"turn_rewards {tuple(turn_rewards.shape)} and turn_mask {tuple(turn_mask.shape)} must be equal N x K "
            f"shapes with N divisible by group_size={group_size}"
        )
    return n, k


def turn_advantages(
    turn_rewards: torch.Tensor,
    turn_mask: torch.Tensor,
    group_size: int,
    scaling: AdvantageScaling = "group",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Per-turn GRPO (DeepSeekMath's process supervision, arXiv 2402.03300 sec. 4.1.3) over turn rewards.

    Every played turn's reward is normalised with the mean and std of ALL played turns of its group
    (``r~ = (r - mean) / (std + eps)``); a turn's advantage is the sum of the normalised rewards from
    that turn to the end of its trajectory (reward-to-go), so a reply is credited with what it and
    the later turns earned, not with what came before it. With ``turn_reward="gain"`` a turn's reward
    is its IoU gain plus its format terms.

    Args:
        turn_rewards: ``N x K`` rewards.
        turn_mask: ``N x K`` 0/1 played turns.
        group_size: ``G``.
        scaling: ``"group"`` divides by the std of the group's played turn rewards, ``"none"`` does not.
        eps: Added to the std.

    Returns:
        ``N x K`` advantages, 0 on turns not played.

    >>> turn_advantages(torch.tensor([[1.0, 1.0], [0.5, 0.0]]), torch.tensor([[1, 1], [1, 0]]), 2, "none")
    tensor([[ 0.3333,  0.1667],
            [-0.3333,  0.0000]])
    """
    n, k = _turn_shape(turn_rewards, turn_mask, group_size)
    mask = turn_mask.to(turn_rewards.dtype)
    r = (turn_rewards * mask).view(-1, group_size * k)
    m = mask.view(-1, group_size * k)
    count = m.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = r.sum(dim=1, keepdim=True) / count
    centred = (r - mean) * m
    if scaling == "group":
        var = (centred**2).sum(dim=1, keepdim=True) / (count - 1.0).clamp(min=1.0)
        centred = centred / (var.sqrt() + eps)
    elif scaling != "none":
        raise ValueError(f"unknown advantage scaling {scaling!r}: use 'group' or 'none'")
    normalised = centred.view(n, k)
    # reward-to-go: reverse cumulative sum along the turns
    to_go = normalised.flip(1).cumsum(dim=1).flip(1)
    return torch.where(turn_mask.bool(), to_go, torch.zeros((), dtype=to_go.dtype))


def immediate_turn_advantages(
    turn_rewards: torch.Tensor,
    turn_mask: torch.Tensor,
    group_size: int,
    scaling: AdvantageScaling = "group",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Per-turn GRPO without reward-to-go: each turn is compared only with the group's replies at that turn.

    For turn ``t`` the rewards of the group members that played it are normalised among themselves
    (``(r - mean_t) / (std_t + eps)``), and that is the turn's advantage: a reply is credited with
    what it earned, not with what the later turns did (discount 0). With ``turn_reward="gain"``,
    turn 1's advantage is exactly single-turn GRPO's on its IoU (the same pressure on the first
    answer as a single-turn policy gets) and turn ``t > 1``'s is how much its correction gained
    compared with the group's other corrections at turn ``t``. The price is myopia: a first answer
    that only sets up a better correction is not rewarded for it. A turn that fewer than two members
    of a group played gets advantage 0 (nothing to compare it with).

    Args:
        turn_rewards: ``N x K`` rewards.
        turn_mask: ``N x K`` 0/1 played turns.
        group_size: ``G``.
        scaling: ``"group"`` divides by the std of the turn's played rewards in the group, ``"none"`` does not.
        eps: Added to the std.

    Returns:
        ``N x K`` advantages, 0 on turns not played.

    >>> immediate_turn_advantages(
    ...     torch.tensor([[1.0, 0.2], [0.5, 0.0], [0.0, 0.6]]), torch.tensor([[1, 1], [1, 0], [1, 1]]), 3, "none"
    ... )
    tensor([[ 0.5000, -0.2000],
            [ 0.0000,  0.0000],
            [-0.5000,  0.2000]])
    """
    n, k = _turn_shape(turn_rewards, turn_mask, group_size)
    mask = turn_mask.to(turn_rewards.dtype).view(-1, group_size, k)
    r = turn_rewards.view(-1, group_size, k) * mask
    count = mask.sum(dim=1, keepdim=True)
    mean = r.sum(dim=1, keepdim=True) / count.clamp(min=1.0)
    centred = (r - mean) * mask
    if scaling == "group":
        var = (centred**2).sum(dim=1, keepdim=True) / (count - 1.0).clamp(min=1.0)
        centred = centred / (var.sqrt() + eps)
    elif scaling != "none":
        raise ValueError(f"unknown advantage scaling {scaling!r}: use 'group' or 'none'")
    return torch.where(turn_mask.bool(), centred.view(n, k), torch.zeros((), dtype=centred.dtype))


def turn_token_weights(
    reply_lengths: torch.Tensor,
    turn_mask: torch.Tensor,
    aggregation: Aggregation = "grpo",
    max_length: int | None = None,
) -> torch.Tensor:
    """The weight each reply token of each turn gets in the loss (``N x K``; the same for all tokens of a reply).

    The loss is ``sum over played turns and their tokens of weight * per_token_loss``; the weights
    generalise the three aggregations to trajectories so that a turn is never counted twice and a
    trajectory that stopped early is not diluted by turns it did not play:

    - ``grpo``: ``1 / (N * L_i)`` with ``L_i`` the reply tokens of trajectory ``i`` over all its
      turns: the mean over each trajectory's tokens, then the mean over trajectories (every
      trajectory weighs the same, however many turns it took).
    - ``dapo``: ``1 / (total reply tokens)``: every token weighs the same.
    - ``dr_grpo``: ``1 / (N * K * max_length)``: a constant normaliser.

    With ``K = 1`` these are exactly :func:`aggregate`'s three rules. Since the loss is a weighted
    sum, micro-batches of any rows add up to the full-batch gradient with no further scaling.

    Args:
        reply_lengths: ``N x K`` reply tokens of each turn (end-of-turn token included).
        turn_mask: ``N x K`` 0/1 played turns.
        aggregation: See :data:`Aggregation`.
        max_length: ``dr_grpo``'s per-reply length (the reply token limit).

    >>> turn_token_weights(torch.tensor([[2, 2], [4, 0]]), torch.tensor([[1, 1], [1, 0]]))
    tensor([[0.1250, 0.1250],
            [0.1250, 0.0000]])
    """
    mask = turn_mask.to(torch.float32)
    lengths = reply_lengths.to(torch.float32) * mask
    n, k = lengths.shape
    if aggregation == "grpo":
        per_trajectory = lengths.sum(dim=1, keepdim=True).clamp(min=1.0)
        weights = 1.0 / (n * per_trajectory) * torch.ones_like(lengths)
    elif aggregation == "dapo":
        weights = torch.full_like(lengths, 1.0 / float(lengths.sum().clamp(min=1.0)))
    elif aggregation == "dr_grpo":
        if max_length is None:
            raise ValueError("dr_grpo needs max_length (the reply token limit)")
        weights = torch.full_like(lengths, 1.0 / (n * k * max_length))
    else:
        raise ValueError(f"unknown aggregation {aggregation!r}: use 'grpo', 'dr_grpo' or 'dapo'")
    return weights * mask


def weighted_grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    row_weights: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    kl_coef: float = 5e-3,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO objective on some reply rows, as a weighted SUM of per-token terms.

    ``row_weights`` come from :func:`turn_token_weights` (one weight per row, i.e. per turn reply),
    so the losses of any split of the rows into micro-batches add up to the whole batch's loss.

    Args:
        logp: ``R x T`` current log-probs of ``R`` reply rows.
        old_logp: ``R x T`` sampling-time log-probs.
        ref_logp: ``R x T`` reference log-probs, or ``None`` when ``kl_coef`` is 0.
        advantages: ``R`` advantages, one per row.
        mask: ``R x T`` reply-token mask.
        row_weights: ``R`` token weights.
        clip_eps: Clip range.
        kl_coef: KL coefficient (k3 estimator).

    Returns:
        ``(loss, stats)``: stats ``policy`` (this part of the weighted surrogate sum), ``kl`` (mean
        per-token KL of these rows), ``clip_frac``.
    """
    surrogate, ratio = clipped_surrogate(logp, old_logp, advantages, clip_eps)
    weights = row_weights.to(logp.dtype).unsqueeze(1) * mask.to(logp.dtype)
    per_token = surrogate
    kl_value = 0.0
    if ref_logp is not None:
        kl = kl_k3(logp, ref_logp.detach())
        kl_value = float(aggregate(kl.detach(), mask, "dapo"))
        if kl_coef != 0.0:
            per_token = per_token + kl_coef * kl
    loss = (per_token * weights).sum()
    stats = {
        "policy": float((surrogate.detach() * weights).sum()),
        "kl": kl_value,
        "clip_frac": clip_fraction(ratio.detach(), advantages, mask, clip_eps),
    }
    return loss, stats

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

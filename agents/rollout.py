"""Tensor plumbing between the processor, ``generate`` and the training forward pass.

A processor batch holds one image per row: ``input_ids``, ``attention_mask`` and
``mm_token_type_ids`` are ``rows x L``; ``image_grid_thw`` is ``rows x 3``; ``pixel_values`` is the
concatenation of every image's patches (``sum(t * h * w) x D``). Repeating or selecting rows must
therefore move each image's block of patches along with its row, which is what this module does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from segzero_agents.grpo_math import completion_mask, token_log_probs

ROW_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "image_grid_thw")


def _image_blocks(batch: dict[str, Any]) -> list[torch.Tensor]:
    sizes = batch["image_grid_thw"].prod(dim=-1).tolist()
    return list(torch.split(batch["pixel_values"], sizes, dim=0))


def select_rows(batch: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    """Keep (or repeat) the given rows of a one-image-per-row processor batch, patches included.

    >>> b = {"input_ids": torch.tensor([[1], [2]]), "image_grid_thw": torch.tensor([[1, 1, 1], [1, 1, 2]]),
    ...      "pixel_values": torch.tensor([[10.0], [20.0], [21.0]])}
    >>> select_rows(b, [1, 1, 0])["pixel_values"].flatten().tolist()
    [20.0, 21.0, 20.0, 21.0, 10.0]
    """
    index = torch.tensor(rows, dtype=torch.long)
    out = {k: v[index.to(v.device)] for k, v in batch.items() if k in ROW_KEYS and v is not None}
    if "pixel_values" in batch:
        blocks = _image_blocks(batch)
        out["pixel_values"] = torch.cat([blocks[r] for r in rows], dim=0)
    return out


def repeat_rows(batch: dict[str, Any], times: int) -> dict[str, Any]:
    """Repeat each row ``times`` times in place order: ``[a, b] -> [a, a, b, b]`` (the group layout)."""
    n = batch["input_ids"].shape[0]
    return select_rows(batch, [r for r in range(n) for _ in range(times)])


@dataclass
class Rollout:
    """Sampled replies for one batch of prompts, ready for scoring and the update.

    Attributes:
        prompt: The prompt batch, already repeated ``G`` times per prompt (``N`` rows).
        completion_ids: ``N x T`` generated tokens (right-padded).
        completion_mask: ``N x T`` 1 on each reply's tokens, end-of-turn token included.
        truncated: ``N`` bools, True where the reply hit the length limit before ending.
        excluded_token_ids: Tokens the sampler suppressed; the update's log-probs leave them out of
            the normaliser too, so they score the distribution the replies came from.
    """

    prompt: dict[str, Any]
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    truncated: torch.Tensor
    excluded_token_ids: tuple[int, ...] = ()


@torch.no_grad()
def sample_replies(
    model: Any,
    prompt_batch: dict[str, Any],
    group_size: int,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    eos_token_id: int,
    pad_token_id: int,
    suppress_token_ids: list[int] | None = None,
) -> Rollout:
    """Sample ``group_size`` replies per prompt with ``model.generate``.

    Args:
        model: The (unwrapped) policy.
        prompt_batch: Left-padded processor batch with ``P`` rows.
        group_size: ``G``.
        max_new_tokens: Reply length limit in tokens.
        temperature: Sampling temperature (1.0 samples from the policy itself, which GRPO's ratio assumes).
        top_p: Nucleus sampling mass (1.0 = off, again so samples follow the policy).
        eos_token_id: End-of-turn token.
        pad_token_id: Padding token written after a reply ends.
        suppress_token_ids: Tokens never sampled: the vision placeholders, which would make the
            training forward look for image features that do not exist.
    """
    prompt = repeat_rows(prompt_batch, group_size)
    prompt = {k: v.to(model.device) for k, v in prompt.items()}
    was_training = model.training
    model.eval()
    try:
        sequences = model.generate(
            **prompt,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            top_k=0,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            suppress_tokens=suppress_token_ids,
        )
    finally:
        model.train(was_training)
    completion_ids = sequences[:, prompt["input_ids"].shape[1] :]
    mask = completion_mask(completion_ids, eos_token_id)
    ended = (completion_ids == eos_token_id).any(dim=1)
    completion_ids = completion_ids.masked_fill(mask == 0, pad_token_id)
    return Rollout(
        prompt=prompt,
        completion_ids=completion_ids,
        completion_mask=mask,
        truncated=~ended,
        excluded_token_ids=tuple(suppress_token_ids or ()),
    )


def vision_token_ids(processor: Any) -> list[int]:
    """Ids of the vision placeholder tokens, which a reply must never contain."""
    names = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    tokenizer = processor.tokenizer
    ids = [tokenizer.convert_tokens_to_ids(n) for n in names]
    return [i for i in ids if i is not None and i != tokenizer.unk_token_id]


def reply_log_probs(
    model: Any,
    prompt: dict[str, Any],
    completion_ids: torch.Tensor,
    mask: torch.Tensor,
    excluded_ids: Sequence[int] = (),
) -> torch.Tensor:
    """Log-probabilities of each reply token under ``model`` (``N x T``, zero outside ``mask``).

    Only the last ``T + 1`` positions' logits are computed (``logits_to_keep``): the vocabulary is
    large and the prompt (with hundreds of image tokens) needs none. ``excluded_ids`` (the
    sampler's suppressed tokens, :attr:`Rollout.excluded_token_ids`) are dropped from the
    softmax, as :func:`~segzero_agents.grpo_math.token_log_probs` explains.
    """
    n_reply = completion_ids.shape[1]
    inputs = dict(prompt)
    inputs["input_ids"] = torch.cat([prompt["input_ids"], completion_ids], dim=1)
    inputs["attention_mask"] = torch.cat([prompt["attention_mask"], mask.to(prompt["attention_mask"].dtype)], dim=1)
    if "mm_token_type_ids" in prompt:
        reply_types = torch.zeros_like(completion_ids, dtype=prompt["mm_token_type_ids"].dtype)
        inputs["mm_token_type_ids"] = torch.cat([prompt["mm_token_type_ids"], reply_types], dim=1)
    logits = model(**inputs, use_cache=False, logits_to_keep=n_reply + 1).logits
    # position t's logits predict token t + 1: drop the last one, which predicts past the reply
    return token_log_probs(logits[:, :-1], completion_ids, mask, excluded_ids)

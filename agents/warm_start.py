"""Optional supervised warm start on oracle replies before GRPO.

A random or very small model never writes a parseable answer, so every reply scores 0, every group
has zero reward variance and GRPO has nothing to learn from. A few steps of next-token training on
well-formed replies built from the ground truth (``info["gt_box"]``, ``info["gt_points"]``, written
with :func:`segzero_env.answers.format_reply`) give the sampled replies a format to vary around.
Real instruct models do not need it (Seg-Zero uses none); the tiny CPU preset does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from segzero_agents.rollout import reply_log_probs


def oracle_reply(
    gt_box: list[float] | None,
    gt_points: list[list[float]] | None,
    image_size: int,
    jitter: float = 0.0,
    rng: np.random.Generator | None = None,
) -> str:
    r"""A well-formed Seg-Zero reply from ground truth; box-interior points when the dataset has none.

    Args:
        gt_box: The target's box in the ``S x S`` frame (``None``: the whole image).
        gt_points: Its two interior points, or ``None``.
        image_size: ``S``.
        jitter: Each box coordinate moves by a uniform draw in ``[-jitter * S, jitter * S]`` (kept
            inside the image, corners kept ordered), and the points become the jittered box's centre:
            the reply keeps the format but localises only roughly.
        rng: Random generator for the jitter (required when ``jitter > 0``).

    >>> oracle_reply([10, 10, 20, 30], [[12, 12], [15, 25]], 56)
    '<think>the target</think>\n<answer>{"bbox": [10, 10, 20, 30], "points_1": [12, 12], "points_2": [15, 25]}</answer>'
    """
    from segzero_env.answers import format_reply

    box = [round(v) for v in (gt_box or [0, 0, image_size - 1, image_size - 1])]
    if jitter > 0:
        if rng is None:
            raise ValueError("oracle_reply: jitter > 0 needs an rng (np.random.default_rng(seed))")
        moved = np.clip(np.asarray(box, float) + rng.uniform(-jitter, jitter, 4) * image_size, 0, image_size - 1)
        x1, x2 = sorted(round(v) for v in moved[0::2])
        y1, y2 = sorted(round(v) for v in moved[1::2])
        box, gt_points = [x1, y1, x2, y2], None
    if gt_points and len(gt_points) >= 2:
        points = [[round(x), round(y)] for x, y in gt_points[:2]]
    else:
        cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
        points = [[cx, cy], [cx, cy]]
    return format_reply(box=box, points=points, think="the target")


def reply_tensors(processor: Any, replies: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (right-padded, end-of-turn appended) and their mask for the given reply texts."""
    tokenizer = processor.tokenizer
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    rows = [tokenizer(r, add_special_tokens=False).input_ids + [eos] for r in replies]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def warm_start(
    accelerator: Any,
    model: Any,
    processor: Any,
    batches: list[tuple[list[Any], list[str], list[str]]],
    learning_rate: float,
) -> list[float]:
    """Minimise the negative log-likelihood of oracle replies, one optimizer step per batch.

    Args:
        accelerator: The run's accelerator (gradients are synchronised across processes).
        model: The prepared policy.
        processor: Its processor.
        batches: ``(images, prompts, replies)`` triples.
        learning_rate: AdamW rate of this phase's own optimizer (the GRPO optimizer is untouched).

    Returns:
        The loss of each step.
    """
    from segzero_env.hf.chat import batch_inputs

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    model.train()
    losses = []
    for images, prompts, replies in batches:
        prompt = {k: v.to(accelerator.device) for k, v in batch_inputs(processor, images, prompts).items()}
        ids, mask = reply_tensors(processor, replies)
        logp = reply_log_probs(model, prompt, ids.to(accelerator.device), mask.to(accelerator.device))
        loss = -logp.sum() / mask.sum()
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses

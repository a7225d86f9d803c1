"""The GRPO trainer's periodic evaluation: greedy replies on a fixed slice of a split, scored with LISA gIoU / cIoU."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from segzero_agents.distributed import merge_across_processes
from segzero_agents.grpo_math import completion_mask
from segzero_agents.rollout import vision_token_ids

if TYPE_CHECKING:
    from segzero_agents.grpo import Args


def eval_blocks(eval_envs: Any, args: Any, accelerator: Any | None = None) -> Iterator[tuple[int, list[str]]]:
    """The evaluated sample ids, in blocks as wide as ``eval_envs``: ``(number of real ids, block)``.

    The ids are the first ``args.eval_samples`` of the envs' dataset (with several processes, this
    process's every ``num_processes``-th of them). The last block is padded with its last id to the
    envs' width; the real ids come first, so a caller scores the first ``m`` rows.
    """
    ids = list(eval_envs.envs[0].dataset.sample_ids)[: args.eval_samples]
    if accelerator is not None:
        ids = ids[accelerator.process_index :: accelerator.num_processes]
    width = eval_envs.num_envs
    for start in range(0, len(ids), width):
        real = ids[start : start + width]
        yield len(real), real + [real[-1]] * (width - len(real))


@torch.no_grad()
def evaluate(
    policy: Any, processor: Any, args: Args, eval_envs: Any, accelerator: Any | None = None
) -> dict[str, float]:
    """GIoU / cIoU (LISA definition) and unusable-reply rate of greedy replies on the first samples.

    The first ``eval_samples`` samples of the split are evaluated, always the same ones.

    With several processes (``accelerator`` given), each evaluates every ``num_processes``-th of
    those samples and the IoU sums are merged, so every process returns the scores of all of them.
    """
    from segzero_env.hf.chat import batch_inputs, decode_replies
    from segzero_env.metrics import IoUAccumulator

    acc = IoUAccumulator("lisa")
    eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    unusable = 0
    was_training = policy.training
    policy.eval()
    for m, block in eval_blocks(eval_envs, args, accelerator):
        obs, info = eval_envs.reset(seed=args.seed, options={"sample_ids": block})
        batch = batch_inputs(processor, list(obs["image"]), list(info["prompt"]))
        batch = {k: v.to(policy.device) for k, v in batch.items()}
        out = policy.generate(
            **batch, do_sample=False, max_new_tokens=args.max_new_tokens, suppress_tokens=vision_token_ids(processor)
        )
        completion = out[:, batch["input_ids"].shape[1] :]
        replies = decode_replies(processor, completion, completion_mask(completion, eos))
        *_, infos = eval_envs.step(replies)
        for i in range(m):
            unusable += infos["parse_failure"][i] is not None
            env = eval_envs.envs[i]
            gt = env.current_sample.mask
            if gt is not None:
                acc.update(env.last_pred_mask, gt)
    policy.train(was_training)
    if accelerator is not None:
        acc = merge_across_processes(accelerator, acc)
        if accelerator.num_processes > 1:
            unusable = int(accelerator.reduce(torch.tensor([float(unusable)], device=accelerator.device), "sum"))
    return {
        "eval/giou": acc.giou,
        "eval/ciou": acc.ciou,
        "eval/n": float(acc.n),
        # replies the parser could not read (scored as empty masks)
        "eval/unusable_rate": unusable / max(acc.n, 1),
    }

"""The GRPO trainer's periodic evaluation: greedy replies on a fixed slice of a split, scored with LISA gIoU / cIoU."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from segzero_agents.distributed import gather_items, merge_across_processes
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


def first_boxes(replies: Sequence[str]) -> list[tuple[float, ...]]:
    """The first box of each reply the parser can read, in the reply's frame (unusable replies left out)."""
    from segzero_env.parsing import parse_reply

    boxes = []
    for reply in replies:
        parsed = parse_reply(reply)
        if parsed.ok:
            boxes.append(tuple(parsed.objects[0].box))
    return boxes


def box_diversity(boxes: Sequence[tuple[float, ...]], accelerator: Any | None = None) -> dict[str, float]:
    """``eval/boxed`` (replies that gave a box) and ``eval/distinct_boxes`` (how many different ones).

    Counted over every process's share of the evaluated samples.
    """
    if accelerator is not None:
        boxes = gather_items(accelerator, boxes)
    return {"eval/boxed": float(len(boxes)), "eval/distinct_boxes": float(len(set(boxes)))}


COLLAPSE_MIN_BOXES = 4
"""A collapse is reported only when at least this many evaluated replies gave a box."""


def collapse_warning(metrics: Mapping[str, float]) -> str | None:
    """A note when the greedy policy gives (nearly) one box for every image, else ``None``.

    Collapsed means at most one distinct box per 8 replies that gave one (one box for 4 to 15
    images, two for 16 to 23, ...): the policy answers without using the image. GRPO can still
    learn from its sampled replies, but in the refinement benchmark the one seed whose warm start
    collapsed ended lowest in every arm (``docs/agent.md``).

    >>> collapse_warning({"eval/boxed": 32.0, "eval/distinct_boxes": 1.0})[:52]
    'collapsed start: the greedy policy gives 1 distinct '
    >>> collapse_warning({"eval/boxed": 32.0, "eval/distinct_boxes": 29.0}) is None
    True
    """
    boxed, distinct = metrics.get("eval/boxed", 0.0), metrics.get("eval/distinct_boxes", 0.0)
    if boxed < COLLAPSE_MIN_BOXES or distinct > max(1.0, boxed // 8):
        return None
    return (
        f"collapsed start: the greedy policy gives {int(distinct)} distinct box(es) for {int(boxed)} evaluated "
        "images, so it answers without using the image. GRPO can still learn from sampled replies; a longer "
        "warm start (--warm-start-steps), another --warm-start-lr or another --seed may start from a policy "
        "that uses it."
    )


@torch.no_grad()
def evaluate(
    policy: Any, processor: Any, args: Args, eval_envs: Any, accelerator: Any | None = None
) -> dict[str, float]:
    """GIoU / cIoU (LISA definition) and unusable-reply rate of greedy replies on the first samples.

    The first ``eval_samples`` samples of the split are evaluated, always the same ones.

    With several processes (``accelerator`` given), each evaluates every ``num_processes``-th of
    those samples and the IoU sums are merged, so every process returns the scores of all of them.
    ``eval/boxed`` and ``eval/distinct_boxes`` count the replies that gave a box and the different
    boxes among them (:func:`box_diversity`; :func:`collapse_warning` reads them).
    """
    from segzero_env.hf.chat import batch_inputs, decode_replies
    from segzero_env.metrics import IoUAccumulator

    acc = IoUAccumulator("lisa")
    eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    unusable = 0
    boxes: list[tuple[float, ...]] = []
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
        boxes += first_boxes(replies[:m])
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
        **box_diversity(boxes, accelerator),
    }

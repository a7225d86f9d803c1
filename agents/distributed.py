"""What the GRPO trainer does differently when ``accelerate launch`` starts several processes.

Data parallel: every process holds the policy, draws its own ``prompts_per_step`` samples, rolls
out and scores them, and the optimizer step averages gradients across processes (DDP, DeepSpeed
or FSDP, as accelerate prepared the model). Everything else is either per-process by design (the
sample schedule, the sampling RNG) or must be combined across processes before it is logged:

- :func:`gather_reply_stats`: every reply's reward, IoU, length, ... from all processes, so the
  logged means cover all ``world_size x P x G`` replies rather than the main process's share;
- :func:`gather_items`: the sample ids every process trained on (logged per step in ``metrics.jsonl``)
  and the boxes every process evaluated;
- :func:`mean_across_processes`: the losses, which each process computes on its own replies;
- :func:`parameter_checksums`: one checksum of the weights per process, equal on every process when
  data parallelism works (DDP / ZeRO-1/2 keep full replicas; under ZeRO-3 or FSDP each process holds a
  shard, so these differ by design);
- :func:`check_launch`: refuses a run in which the launcher started several processes that each
  believe they are alone (they would all write the same files).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def check_launch(accelerator: Any) -> None:
    """Raise if the launcher started several processes but accelerate set up a single-process run.

    This happens when ``torchrun`` / ``accelerate launch --multi_gpu`` starts N processes on a
    machine without GPUs and the trainer was not told to use the CPU: each process then trains
    alone and all of them overwrite the same ``metrics.jsonl`` and checkpoints.

    Raises:
        RuntimeError: If ``WORLD_SIZE`` says more than one process but accelerate sees one.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes == 1:
        raise RuntimeError(
            f"the launcher started {launched} processes (WORLD_SIZE={launched}) but accelerate set up a "
            "single-process run on this one; on a machine without GPUs pass --device cpu so the "
            "processes join one gloo process group"
        )


def gather_reply_stats(
    accelerator: Any, rewards: np.ndarray, infos: Mapping[str, Any], lengths: torch.Tensor, truncated: torch.Tensor
) -> tuple[list[str], np.ndarray]:
    """Every process's per-reply numbers, concatenated in process order.

    Args:
        accelerator: The run's accelerator.
        rewards: This process's ``P x G`` rewards.
        infos: The group vector env's step infos (``iou``, ``parse_failure``, ``reward_terms``).
        lengths: Reply lengths in tokens.
        truncated: Whether each reply hit the length limit.

    Returns:
        ``(columns, table)``: column names (``reward``, ``iou``, ``unusable``, ``length``, ``truncated``,
        then ``term/<name>`` for each reward term) and a ``(world_size * P * G) x columns`` float64
        array. Process ``r``'s rows follow process ``r - 1``'s, so blocks of ``G`` rows stay groups.
    """
    # the vector env adds a ``_<name>`` presence mask beside every info entry: those are not terms
    terms = sorted(t for t in infos["reward_terms"] if not t.startswith("_"))  # same order on every process
    columns = ["reward", "iou", "unusable", "length", "truncated", *(f"term/{t}" for t in terms)]
    local = np.stack(
        [
            np.asarray(rewards, dtype=np.float64),
            np.asarray(infos["iou"], dtype=np.float64),
            np.asarray([f is not None for f in infos["parse_failure"]], dtype=np.float64),
            lengths.detach().cpu().double().numpy(),
            truncated.detach().cpu().double().numpy(),
            *(np.asarray(infos["reward_terms"][t], dtype=np.float64) for t in terms),
        ],
        axis=1,
    )
    if accelerator.num_processes == 1:
        return columns, local
    # float64 keeps rewards exact; the gather runs on the accelerator's device (NCCL needs CUDA tensors)
    gathered = accelerator.gather(torch.as_tensor(local, device=accelerator.device))
    return columns, gathered.cpu().numpy()


def gather_items(accelerator: Any, items: Sequence[Any]) -> list[Any]:
    """Every process's (picklable) items, in process order."""
    if accelerator.num_processes == 1:
        return list(items)
    from accelerate.utils import gather_object

    return list(gather_object(list(items)))


def mean_across_processes(accelerator: Any, values: Mapping[str, float]) -> dict[str, float]:
    """The mean over processes of each value (NaNs stay NaN)."""
    if accelerator.num_processes == 1:
        return dict(values)
    keys = sorted(values)
    local = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=accelerator.device)
    reduced = accelerator.reduce(local, reduction="mean").cpu().tolist()
    return dict(zip(keys, reduced, strict=True))


def parameter_checksums(accelerator: Any, model: Any) -> list[list[float]]:
    """``[sum, sum of squares]`` of every weight, in float64, one pair per process (process order).

    Cheap (two reductions per tensor, on its device) and exact enough to show that replicas agree:
    data-parallel replicas are bit-identical, so their checksums are equal, not merely close.
    """
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    for p in accelerator.unwrap_model(model).parameters():
        w = p.detach().to(device=total.device, dtype=torch.float64)
        total[0] += w.sum()
        total[1] += w.square().sum()
    mine = [float(v) for v in total.cpu()]
    if accelerator.num_processes == 1:
        return [mine]
    from accelerate.utils import gather_object

    return [list(pair) for pair in gather_object([mine])]


def merge_across_processes(accelerator: Any, accumulator: Any) -> Any:
    """Merge an object with a ``merge`` method (e.g. an IoU accumulator) over all processes."""
    if accelerator.num_processes == 1:
        return accumulator
    from accelerate.utils import gather_object

    parts = gather_object([accumulator])
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    return merged

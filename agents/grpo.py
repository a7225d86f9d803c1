"""GRPO for a Qwen-VL policy against the reasoning-segmentation environment, in one readable file.

Read top to bottom: the arguments (each with its default and the reason for it), how samples are
scheduled, then :func:`train`: load the policy, make the group vector env, and loop
rollout -> score -> advantages -> clipped update -> log -> checkpoint.

Every step, each process draws ``prompts_per_step`` samples; the policy writes ``group_size`` replies
per sample (temperature 1.0); ONE ``envs.step`` scores all of them (the segmenter encodes each image
once); rewards become group-relative advantages; the clipped surrogate plus ``kl_coef`` times the k3
KL to the reference is minimised over micro-batches (gradient accumulation). The maths lives in
:mod:`segzero_agents.grpo_math`; run ``python examples/train_grpo.py --help`` for the options.
"""

from __future__ import annotations

import functools
import json
import math
import random
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from segzero_agents.checkpointing import restore, save_checkpoint
from segzero_agents.distributed import (
    check_launch,
    gather_items,
    gather_reply_stats,
    mean_across_processes,
    parameter_checksums,
)
from segzero_agents.evaluation import collapse_warning, evaluate
from segzero_agents.grpo_math import group_advantages, grpo_loss, shuffle_within_groups
from segzero_agents.metrics_logger import MetricsLogger
from segzero_agents.multiturn_rollout import ENV_FEEDBACK, FEEDBACK_MODES, evaluate_refinement, refinement_train_step
from segzero_agents.policy_model import PolicyBundle, load_policy
from segzero_agents.rollout import Rollout, reply_log_probs, sample_replies, select_rows, vision_token_ids
from segzero_agents.run_folder import open_run_folder


@dataclass
class Args:
    """Every knob of the trainer. Defaults reproduce Seg-Zero's recipe (arXiv 2503.06520) where it has one."""

    # --- run ---
    output_dir: str = field(
        default="runs/grpo", metadata={"help": "Run folder: metrics.jsonl, tensorboard/, checkpoints/."}
    )
    steps: int = field(
        default=562,
        metadata={"help": "Optimizer steps. 562 = one epoch of Seg-Zero's 9k samples at 16 prompts a step."},
    )
    seed: int = field(default=42, metadata={"help": "Seeds python, numpy, torch, the sample order and the env."})
    resume: bool = field(
        default=False, metadata={"help": "Continue from the last checkpoint in output_dir, as if never stopped."}
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "Delete the checkpoints, metrics and logs of an old run in output_dir, then start afresh."},
    )
    allow_code: bool = field(
        default=False,
        metadata={
            "help": "Allow 'module:Class' names in --segmenter and --env-id: they import and run code "
            "(same as SEGZERO_ALLOW_CODE=1). Registered names never need it."
        },
    )
    device: str = field(
        default="auto", metadata={"help": "'auto' (CUDA when present, as accelerate decides), 'cpu' to force CPU."}
    )
    torch_threads: int = field(
        default=0,
        metadata={
            "help": "CPU threads for torch; 0 keeps torch's default. 1 is fastest for tiny models on a busy machine."
        },
    )

    # --- model ---
    model_name_or_path: str = field(
        default="Qwen/Qwen2.5-VL-3B-Instruct",
        metadata={"help": "Local folder or hub id of a Qwen-VL instruct model; 'tiny' builds the offline test model."},
    )
    tiny_hidden: int = field(
        default=32, metadata={"help": "Hidden size of the 'tiny' model (32 keeps CPU steps sub-second)."}
    )
    tiny_patch_size: int = field(
        default=14,
        metadata={
            "help": "'tiny' model only: vision patch side in pixels (2x2 patches make one image token; "
            "28 gives a 56 px image one token that sees the whole image, which it learns to localise from faster)."
        },
    )
    tiny_compact_tokenizer: bool = field(
        default=False,
        metadata={
            "help": "'tiny' model only: one token per coordinate and few for the prompt and reply text "
            "(a reply takes ~21 tokens instead of ~58)."
        },
    )
    init_state_dict: str | None = field(
        default=None,
        metadata={
            "help": "A torch.save'd state dict loaded into the policy after it is built (before any warm "
            "start): e.g. one warm start shared by several runs, as benchmarks/grpo_learning.py does."
        },
    )
    dtype: str = field(
        default="auto", metadata={"help": "'auto' = bf16 on GPU (Seg-Zero trains in bf16), fp32 on CPU."}
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "'sdpa' or 'flash_attention_2'; None keeps transformers' default (sdpa)."}
    )
    gradient_checkpointing: bool = field(
        default=True,
        metadata={"help": "Recompute activations in backward: ~3x less activation memory for ~30%% more time."},
    )
    use_lora: bool = field(
        default=False,
        metadata={"help": "Train LoRA adapters (one small GPU) instead of every weight (Seg-Zero: full)."},
    )
    lora_r: int = field(
        default=64, metadata={"help": "LoRA rank; 64 is large enough for RL, whose updates are low-rank anyway."}
    )
    lora_alpha: int = field(default=128, metadata={"help": "LoRA scale numerator (alpha / r = 2, the common choice)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on LoRA inputs."})
    freeze_vision_tower: bool = field(
        default=False, metadata={"help": "Full fine-tuning only: keep the vision encoder fixed."}
    )

    # --- environment ---
    env_id: str = field(default="ReasonSegShapes-v0", metadata={"help": "Gymnasium id; ReasonSeg-v0 for real data."})
    dataset: str | None = field(
        default=None, metadata={"help": "Dataset name overriding the id's default (e.g. 'segzero-train')."}
    )
    split: str = field(default="train", metadata={"help": "Training split."})
    data_root: str | None = field(default=None, metadata={"help": "Dataset folder (local copy)."})
    dataset_kwargs: str = field(default="{}", metadata={"help": "JSON of extra dataset arguments."})
    segmenter: str = field(
        default="grabcut", metadata={"help": "'sam2' for the real task; 'box' / 'grabcut' run on CPU."}
    )
    segmenter_kwargs: str = field(
        default="{}", metadata={"help": 'JSON, e.g. \'{"model": "large", "device": "cuda"}\' for SAM2.'}
    )
    reward: str = field(
        default="mask-iou",
        metadata={
            "help": "Reward preset: 'mask-iou' (the segmenter's mask IoU + format), 'seg-zero' and "
            "'vision-reasoner' (those papers' training rewards, quirks included), 'seg-zero-robust', "
            "'vision-reasoner-robust' (the same terms on the parsed answer)."
        },
    )
    prompt_template: str = field(
        default="seg-zero", metadata={"help": "Prompt template (Seg-Zero's verbatim by default)."}
    )
    image_size: int = field(
        default=840, metadata={"help": "Observation side S; 840 is Seg-Zero's (a multiple of 28, so no re-resize)."}
    )

    # --- GRPO ---
    prompts_per_step: int = field(
        default=2, metadata={"help": "Prompts per process per step; 2 x 8 GPUs = Seg-Zero's 16 prompts a step."}
    )
    group_size: int = field(default=8, metadata={"help": "Replies per prompt G (Seg-Zero: 8)."})
    max_new_tokens: int = field(default=1300, metadata={"help": "Reply length limit in tokens (Seg-Zero: 1300)."})
    temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature; 1.0 samples the policy itself, as the ratio assumes."}
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling; 1.0 (off) for the same reason."})
    learning_rate: float = field(
        default=1e-6, metadata={"help": "AdamW learning rate, constant after warmup (Seg-Zero: 1e-6)."}
    )
    warmup_steps: int = field(default=0, metadata={"help": "Linear warmup steps (Seg-Zero: none)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (Seg-Zero: 0.01)."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (Seg-Zero: 1.0)."})
    kl_coef: float = field(
        default=5e-3,
        metadata={"help": "KL penalty beta with the k3 estimator (Seg-Zero: 5e-3); 0 drops the reference."},
    )
    clip_eps: float = field(default=0.2, metadata={"help": "PPO clip range (Seg-Zero: 0.2)."})
    loss_aggregation: str = field(
        default="grpo",
        metadata={
            "help": "'grpo' (per-reply mean, the original), 'dr_grpo' (constant normaliser) or 'dapo' (token mean)."
        },
    )
    advantage_scaling: str = field(
        default="group", metadata={"help": "'group' divides by the group std (GRPO), 'none' does not (Dr. GRPO)."}
    )
    num_iterations: int = field(
        default=1,
        metadata={"help": "Updates per batch of replies; 1 makes the ratio exactly 1 (on-policy, as Seg-Zero)."},
    )
    warm_start_steps: int = field(
        default=0,
        metadata={"help": "Supervised steps on oracle replies before GRPO (tiny models only; Seg-Zero: none)."},
    )
    warm_start_lr: float = field(default=3e-3, metadata={"help": "Learning rate of the warm start's own AdamW."})
    warm_start_jitter: float = field(
        default=0.0,
        metadata={
            "help": "Shift each oracle box coordinate by up to this fraction of the image side: the warm "
            "start then teaches the format but not exact localisation, which is left for GRPO to learn."
        },
    )
    shuffle_rewards: bool = field(
        default=False,
        metadata={
            "help": "Control run: permute rewards within each group before the advantages (same compute, no "
            "signal); the logged rewards stay the true ones."
        },
    )
    micro_batch_size: int = field(
        default=4,
        metadata={"help": "Replies per forward/backward; the step accumulates gradients over all P x G replies."},
    )

    # --- refinement episodes (multi-turn; agents/multiturn_rollout.py, docs/agent.md) ---
    max_turns: int = field(
        default=1,
        metadata={"help": "Turns per episode K; above 1 each group member plays a K-turn refinement trajectory."},
    )
    feedback: str = field(
        default="image",
        metadata={
            "help": "What the policy sees after a turn: 'image' (its mask shaded into the image), 'text' (the "
            "env's feedback text, for models that cannot see it), 'text-iou' (the text plus the mask's IoU: LEAKS the "
            "ground truth, a study setting), 'answer' (the env's text without the mask: the turn and the previous "
            "answer only, the ablation of the mask) or 'none' (the ablation: the turn-1 prompt again)."
        },
    )
    turn_advantage: str = field(
        default="trajectory",
        metadata={
            "help": "'trajectory' (each return's group-relative advantage on every turn) or 'per-turn' "
            "(normalised turn rewards summed from the turn on, with the env's gain rewards) or 'immediate' (each "
            "turn's reward normalised among the group's replies at that turn: turn 1 gets single-turn GRPO's "
            "advantage, a later turn its gain's)."
        },
    )
    turn_reward: str = field(
        default="gain", metadata={"help": "The env's turn_reward: 'gain' (IoU gain per turn) or 'final'."}
    )
    turn_cost: float = field(default=0.0, metadata={"help": "The env's turn_cost, paid on every turn after the first."})
    eval_max_turns: int = field(
        default=0, metadata={"help": "Turns of the evaluation episodes; 0 = max_turns. Above 1: gIoU after each turn."}
    )

    # --- logging, evaluation, checkpoints ---
    log_replies_every: int = field(default=10, metadata={"help": "Steps between sample-reply tables in TensorBoard."})
    eval_every: int = field(
        default=0, metadata={"help": "Steps between evaluations (greedy replies, gIoU / cIoU); 0 = never."}
    )
    eval_dataset: str | None = field(
        default=None, metadata={"help": "Dataset evaluated; None = the env id's default (ReasonSeg for ReasonSeg-v0)."}
    )
    eval_data_root: str | None = field(default=None, metadata={"help": "Folder of the evaluated dataset."})
    eval_split: str = field(default="val", metadata={"help": "Split evaluated."})
    eval_samples: int = field(
        default=32, metadata={"help": "Samples per evaluation (the first ones of the split, always the same)."}
    )
    save_every: int = field(
        default=50, metadata={"help": "Steps between checkpoints (one is always written at the end)."}
    )
    keep_last: int = field(default=3, metadata={"help": "Checkpoints kept (older ones deleted); 0 keeps all."})

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"group_size={self.group_size}: GRPO compares replies within a group, use at least 2")
        if self.loss_aggregation not in ("grpo", "dr_grpo", "dapo"):
            raise ValueError(f"loss_aggregation={self.loss_aggregation!r}: use 'grpo', 'dr_grpo' or 'dapo'")
        if self.advantage_scaling not in ("group", "none"):
            raise ValueError(f"advantage_scaling={self.advantage_scaling!r}: use 'group' or 'none'")
        if self.image_size % 28:
            raise ValueError(
                f"image_size={self.image_size} should be a multiple of 28 so Qwen's processor keeps it as is"
            )
        if self.micro_batch_size < 1 or self.prompts_per_step < 1 or self.num_iterations < 1:
            raise ValueError("micro_batch_size, prompts_per_step and num_iterations must be at least 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0: GRPO needs sampled, different replies")
        if self.max_turns < 1 or self.eval_max_turns < 0:
            raise ValueError(f"max_turns={self.max_turns} must be >= 1 and eval_max_turns={self.eval_max_turns} >= 0")
        if self.feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback={self.feedback!r}: use one of {', '.join(FEEDBACK_MODES)}")
        if self.turn_advantage not in ("trajectory", "per-turn", "immediate"):
            raise ValueError(f"turn_advantage={self.turn_advantage!r}: use 'trajectory', 'per-turn' or 'immediate'")


# ---------------------------------------------------------------------------------------------
# Sample schedule: a fresh permutation of the dataset per epoch, a deterministic function of the
# step, so a resumed run draws exactly the samples an uninterrupted one would.
# ---------------------------------------------------------------------------------------------


def scheduled_sample_ids(
    sample_ids: Sequence[str], step: int, per_process: int, rank: int, world_size: int, seed: int
) -> list[str]:
    """Sample ids process ``rank`` trains on at ``step`` (epoch-wise shuffling without replacement).

    >>> scheduled_sample_ids(["a", "b", "c"], step=0, per_process=2, rank=0, world_size=1, seed=0)
    ['c', 'a']
    """
    n = len(sample_ids)
    start = (step * world_size + rank) * per_process
    out = []
    for position in range(start, start + per_process):
        epoch, offset = divmod(position, n)
        order = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(sample_ids[int(order[offset])])
    return out


EVAL_WIDTH = 8
"""Held-out episodes an evaluation plays side by side (a batch's width changes its padding, hence its replies)."""


def make_eval_envs(args: Args, max_turns: int) -> Any:
    """The held-out envs the trainer evaluates on: ``min(eval_samples, EVAL_WIDTH)`` single-member sub-envs."""
    width = min(args.eval_samples, EVAL_WIDTH)
    return make_envs(args, width, 1, args.eval_split, args.eval_dataset, args.eval_data_root, max_turns)


def make_envs(
    args: Args,
    num_envs: int,
    group_size: int,
    split: str,
    dataset: str | None,
    data_root: str | None,
    max_turns: int = 1,
) -> Any:
    """The group vector env: ``num_envs`` sub-envs in blocks of ``group_size`` sharing one sample.

    ``max_turns > 1`` makes refinement episodes (with ``args.turn_reward`` and ``args.turn_cost``);
    their blocks reset on the next step once finished (members stop at different turns).
    """
    import gymnasium as gym

    import segzero_env  # noqa: F401 - registers the ids

    kwargs: dict[str, Any] = {
        "group_size": group_size,
        "split": split,
        "image_size": args.image_size,
        "segmenter": args.segmenter,
        "segmenter_kwargs": json.loads(args.segmenter_kwargs),
        "reward": args.reward,
        "prompt_template": args.prompt_template,
        "dataset_kwargs": json.loads(args.dataset_kwargs),
    }
    if dataset is not None:
        kwargs["dataset"] = dataset
        kwargs["dataset_kwargs"] = json.loads(args.dataset_kwargs) if dataset == args.dataset else {}
    if data_root is not None:
        kwargs["data_root"] = data_root
    mode = "Disabled"
    if max_turns > 1:
        kwargs.update(max_turns=max_turns, turn_reward=args.turn_reward, turn_cost=args.turn_cost)
        if args.feedback in ENV_FEEDBACK:
            kwargs["feedback"] = ENV_FEEDBACK[args.feedback]  # what the env's feedback text then holds
        mode = "NextStep"  # a block that finished early waits, unscored, while the others play on
    # Disabled: the loop resets before every batch and reads the step's own info; a forgotten reset raises.
    return gym.make_vec(
        args.env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", autoreset_mode=mode, **kwargs
    )


def run_warm_start(
    args: Args, accelerator: Any, model: Any, processor: Any, envs: Any, all_ids: Sequence[str]
) -> list[float]:
    """The supervised warm start: ``warm_start_steps`` steps on (jittered) oracle replies.

    Deterministic given ``args.seed``: its samples come from their own schedule (seed + 1) and the
    jitter from its own generator, so every run (and another trainer given the same policy, as the
    learning benchmark does) starts GRPO from the same weights. Returns each step's NLL.
    """
    from segzero_agents.warm_start import oracle_reply, warm_start

    G = args.group_size  # noqa: N806 - the paper's name
    jitter_rng = np.random.default_rng([args.seed, accelerator.process_index])
    batches = []
    for k in range(args.warm_start_steps):
        ids = scheduled_sample_ids(
            all_ids, k, args.prompts_per_step, accelerator.process_index, accelerator.num_processes, args.seed + 1
        )
        obs, info = envs.reset(seed=args.seed, options={"sample_ids": ids})
        replies = [
            oracle_reply(info["gt_box"][i], info["gt_points"][i], args.image_size, args.warm_start_jitter, jitter_rng)
            for i in range(0, len(info["gt_box"]), G)
        ]
        batches.append((list(obs["image"][::G]), list(info["prompt"][::G]), replies))
    return warm_start(accelerator, model, processor, batches, args.warm_start_lr)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every process adds its rank before calling)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA allocations on GPU, the process's resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


# ---------------------------------------------------------------------------------------------
# The update: one optimizer step from a scored rollout.
# ---------------------------------------------------------------------------------------------


def _reference_log_probs(
    policy: Any, ref_model: Any | None, uses_lora: bool, rollout: Rollout, rows: list[int]
) -> torch.Tensor:
    prompt = select_rows(rollout.prompt, rows)
    ids, mask = rollout.completion_ids[rows], rollout.completion_mask[rows]
    with torch.no_grad():
        if uses_lora:
            # the base model with the adapter switched off is the reference: no second copy in memory
            with policy.disable_adapter():
                return reply_log_probs(policy, prompt, ids, mask, rollout.excluded_token_ids)
        return reply_log_probs(ref_model, prompt, ids, mask, rollout.excluded_token_ids)


def grpo_update(
    accelerator: Any,
    model: Any,
    ref_model: Any | None,
    uses_lora: bool,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rollout: Rollout,
    advantages: torch.Tensor,
    args: Args,
) -> dict[str, float]:
    """Run ``num_iterations`` optimizer steps of the clipped GRPO objective on one scored rollout.

    The ``N`` replies are split into micro-batches of ``micro_batch_size``; each micro-batch's loss is
    weighted by its share of the aggregation's normaliser so that the accumulated gradient equals
    the gradient of the loss over all ``N`` replies at once.
    """
    policy = accelerator.unwrap_model(model)
    n = rollout.completion_ids.shape[0]
    chunks = [list(range(i, min(i + args.micro_batch_size, n))) for i in range(0, n, args.micro_batch_size)]
    total_tokens = float(rollout.completion_mask.sum().clamp(min=1))
    advantages = advantages.to(rollout.completion_ids.device)

    ref_logps = None
    if args.kl_coef != 0.0:
        ref_logps = [_reference_log_probs(policy, ref_model, uses_lora, rollout, rows) for rows in chunks]
    old_logps = None
    if args.num_iterations > 1:
        with torch.no_grad():
            old_logps = [
                reply_log_probs(
                    model,
                    select_rows(rollout.prompt, rows),
                    rollout.completion_ids[rows],
                    rollout.completion_mask[rows],
                    rollout.excluded_token_ids,
                )
                for rows in chunks
            ]

    model.train()
    totals = {"loss": 0.0, "policy": 0.0, "kl": 0.0, "clip_frac": 0.0, "grad_norm": 0.0}
    for _ in range(args.num_iterations):
        for c, rows in enumerate(chunks):
            ids, mask = rollout.completion_ids[rows], rollout.completion_mask[rows]
            dapo = args.loss_aggregation == "dapo"
            weight = float(mask.sum()) / total_tokens if dapo else len(rows) / n
            # gradients are synchronised across processes only on the last micro-batch
            sync = accelerator.no_sync(model) if c < len(chunks) - 1 else _null_context()
            with sync:
                logp = reply_log_probs(model, select_rows(rollout.prompt, rows), ids, mask, rollout.excluded_token_ids)
                old = logp.detach() if old_logps is None else old_logps[c]
                loss, stats = grpo_loss(
                    logp,
                    old,
                    None if ref_logps is None else ref_logps[c],
                    advantages[rows],
                    mask,
                    clip_eps=args.clip_eps,
                    kl_coef=args.kl_coef,
                    aggregation=args.loss_aggregation,  # type: ignore[arg-type]
                    max_length=args.max_new_tokens,
                )
                accelerator.backward(loss * weight)
            totals["loss"] += float(loss.detach()) * weight / args.num_iterations
            for key in ("policy", "kl", "clip_frac"):
                totals[key] += stats[key] * weight / args.num_iterations
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        # some distributed backends (DeepSpeed) clip inside their engine and return no norm
        totals["grad_norm"] = math.nan if grad_norm is None else float(grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return totals


class _null_context:  # noqa: N801 - used like contextlib.nullcontext, kept local for clarity
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# The training loop.
# ---------------------------------------------------------------------------------------------


def _step_metrics(columns: list[str], table: np.ndarray, group_size: int) -> dict[str, float]:
    """Means over the step's replies of every process (``table``: one row per reply, see gather_reply_stats)."""
    col = {name: table[:, i] for i, name in enumerate(columns)}
    rewards = col["reward"]
    grouped = rewards.reshape(-1, group_size)
    metrics = {
        "rewards/mean": float(rewards.mean()),
        "rewards/std": float(rewards.std()),
        "rewards/frac_zero_std_groups": float((grouped.std(axis=1) == 0).mean()),
        "replies/length": float(col["length"].mean()),
        "replies/truncated_rate": float(col["truncated"].mean()),
        "replies/unusable_rate": float(col["unusable"].mean()),
        "env/iou": float(col["iou"].mean()),
        "rollout/prompts": float(len(rewards) // group_size),
        "rollout/replies": float(len(rewards)),
    }
    for name in columns:
        if name.startswith("term/"):
            metrics[f"rewards/{name[5:]}"] = float(col[name].mean())
    return metrics


def policy_from_args(args: Args, device: torch.device) -> PolicyBundle:
    """The policy, its processor and its reference as the run's arguments describe them (fresh weights)."""
    return load_policy(
        args.model_name_or_path,
        device=device,
        dtype=args.dtype,
        seed=args.seed,
        tiny_hidden=args.tiny_hidden,
        tiny_patch_size=args.tiny_patch_size,
        tiny_compact_max_coordinate=args.image_size if args.tiny_compact_tokenizer else None,
        attn_implementation=args.attn_implementation,
        use_lora=args.use_lora,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        gradient_checkpointing=args.gradient_checkpointing and device.type == "cuda",
        freeze_vision_tower=args.freeze_vision_tower,
        kl_coef=args.kl_coef,
    )


def train(args: Args) -> dict[str, Any]:
    """Train; returns a summary (last metrics, peak memory, seconds per step, output folder)."""
    if args.allow_code:
        from segzero_env.trust import allow_code

        with allow_code():
            return _train(args)
    return _train(args)


def _train(args: Args) -> dict[str, Any]:
    from accelerate import Accelerator

    from segzero_env.hf.chat import batch_inputs, coordinate_frame, decode_replies, reply_to_env_frame

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    accelerator = Accelerator(cpu=args.device == "cpu")
    check_launch(accelerator)
    device = accelerator.device
    seed_everything(args.seed + accelerator.process_index)
    output_dir = Path(args.output_dir)
    # before anything is loaded or written: one run per folder, and a resume keeps its settings
    resume_from = open_run_folder(accelerator, asdict(args))

    bundle = policy_from_args(args, device)
    processor = bundle.processor
    if args.init_state_dict:
        state = torch.load(args.init_state_dict, map_location=device, weights_only=True)
        for target in (bundle.model, bundle.ref_model):
            if target is not None:
                target.load_state_dict(state)
    if accelerator.process_index:
        # building a model may reseed torch (the tiny one does, from args.seed), which would give
        # every process the same sampling stream; process 0 keeps the one a single-process run has
        torch.manual_seed(args.seed + accelerator.process_index)
    trainable = [p for p in bundle.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), weight_decay=args.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / args.warmup_steps) if args.warmup_steps else 1.0
    )
    model, optimizer, scheduler = accelerator.prepare(bundle.model, optimizer, scheduler)
    ref_model = bundle.ref_model
    if ref_model is not None and accelerator.num_processes > 1:
        ref_model = accelerator.prepare_model(ref_model, evaluation_mode=True)

    G = args.group_size  # noqa: N806 - the paper's name
    envs = make_envs(args, args.prompts_per_step * G, G, args.split, args.dataset, args.data_root, args.max_turns)
    eval_envs = None
    eval_turns = args.eval_max_turns or args.max_turns
    # refinement episodes are evaluated turn by turn (gIoU after each turn)
    run_eval = evaluate if eval_turns == 1 else evaluate_refinement
    if args.eval_every:
        eval_envs = make_eval_envs(args, eval_turns)
    all_ids = list(envs.envs[0].dataset.sample_ids)
    frame = coordinate_frame(accelerator.unwrap_model(model).config.model_type)
    eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    suppress = vision_token_ids(processor)

    if args.warm_start_steps:
        # also run when resuming: it is deterministic and rebuilds the warm-started reference model;
        # the checkpoint then overwrites the policy, optimizer and RNG states
        sft_losses = run_warm_start(args, accelerator, model, processor, envs, all_ids)
        if ref_model is not None:
            # the reference is the warm-started policy, so the KL only measures what GRPO changes
            accelerator.unwrap_model(ref_model).load_state_dict(accelerator.unwrap_model(model).state_dict())
        accelerator.print(f"warm start: NLL {sft_losses[0]:.3f} -> {sft_losses[-1]:.3f} over {len(sft_losses)} steps")
    start_step = 0
    if args.resume:
        start_step = int(restore(accelerator, resume_from, accelerator.num_processes)["step"])
        accelerator.print(f"resumed from step {start_step} under {output_dir}")
    logger = MetricsLogger(
        output_dir, enabled=accelerator.is_main_process, resume_step=start_step if args.resume else None
    )

    record: dict[str, Any] = {}
    if eval_envs is not None and start_step == 0:
        # the starting point (after any warm start), logged as step 0, so gains are measured from it
        start_metrics = run_eval(accelerator.unwrap_model(model), processor, args, eval_envs, accelerator)
        logger.log(0, start_metrics)
        collapsed = collapse_warning(start_metrics)
        if collapsed is not None:
            accelerator.print(collapsed)
    step_times = []

    def checkpoint_if_due(done: int) -> None:
        if done == args.steps or (args.save_every and done % args.save_every == 0):
            cursor = (done * accelerator.num_processes) * args.prompts_per_step
            save_checkpoint(
                accelerator,
                model,
                processor,
                output_dir,
                done,
                {
                    "samples_drawn": cursor,
                    "epoch": cursor / max(len(all_ids), 1),
                    "num_processes": accelerator.num_processes,
                    "args": asdict(args),
                },
                keep_last=args.keep_last or None,
            )

    for step in range(start_step, args.steps):
        t0 = time.perf_counter()
        # 1. observations: P samples, each shown to a block of G sub-envs
        sample_ids = scheduled_sample_ids(
            all_ids, step, args.prompts_per_step, accelerator.process_index, accelerator.num_processes, args.seed
        )
        if args.max_turns > 1:
            # refinement episodes: each member plays a K-turn trajectory (agents/multiturn_rollout.py)
            to_env = None
            if frame != "absolute":
                to_env = functools.partial(
                    reply_to_env_frame, model_type=accelerator.unwrap_model(model).config.model_type,
                    image_size=args.image_size,
                )  # fmt: skip
            metrics, reply_rows = refinement_train_step(
                accelerator, model, ref_model, bundle.uses_lora, optimizer, scheduler, processor, envs,
                sample_ids, step, args, suppress, to_env,
            )  # fmt: skip
            metrics["policy/lr"] = float(scheduler.get_last_lr()[0])
            metrics["memory/peak_mb"] = peak_memory_mb(device)
            if eval_envs is not None and (step + 1) % args.eval_every == 0:
                metrics.update(run_eval(accelerator.unwrap_model(model), processor, args, eval_envs, accelerator))
            record = logger.log(step + 1, metrics, extra={"sample_ids": gather_items(accelerator, sample_ids)})
            if args.log_replies_every and step % args.log_replies_every == 0:
                logger.log_replies(step + 1, reply_rows)
            step_times.append(metrics["time/step_s"])
            checkpoint_if_due(step + 1)
            continue
        obs, reset_info = envs.reset(seed=args.seed + step, options={"sample_ids": sample_ids})
        images = list(obs["image"][::G])
        prompts = list(reset_info["prompt"][::G])

        # 2. rollout: G sampled replies per prompt
        prompt_batch = batch_inputs(processor, images, prompts)
        rollout = sample_replies(
            accelerator.unwrap_model(model),
            dict(prompt_batch),
            G,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            eos_token_id=eos,
            pad_token_id=processor.tokenizer.pad_token_id,
            suppress_token_ids=suppress,
        )
        replies = decode_replies(processor, rollout.completion_ids, rollout.completion_mask)
        if frame != "absolute":
            replies = [
                reply_to_env_frame(r, accelerator.unwrap_model(model).config.model_type, args.image_size)
                for r in replies
            ]
        t1 = time.perf_counter()

        # 3. score all P x G replies in one call (one segmenter pass per image)
        _, rewards, _, _, infos = envs.step(replies)
        t2 = time.perf_counter()

        # 4. group-relative advantages and the clipped update
        train_rewards = torch.as_tensor(rewards, dtype=torch.float32)
        if args.shuffle_rewards:
            control_rng = torch.Generator().manual_seed(args.seed * 100_003 + step)
            train_rewards = shuffle_within_groups(train_rewards, G, control_rng)
        advantages = group_advantages(train_rewards, G, args.advantage_scaling)  # type: ignore[arg-type]
        losses = grpo_update(
            accelerator, model, ref_model, bundle.uses_lora, optimizer, scheduler, rollout, advantages, args
        )
        t3 = time.perf_counter()

        # 5. logging: rewards and losses of every process, not only the main one's share
        columns, table = gather_reply_stats(
            accelerator, np.asarray(rewards), infos, rollout.completion_mask.sum(dim=1), rollout.truncated
        )
        metrics = _step_metrics(columns, table, G)
        losses = mean_across_processes(accelerator, losses)
        metrics.update({f"losses/{k}": v for k, v in losses.items() if k in ("loss", "policy", "kl")})
        metrics.update({"policy/clip_frac": losses["clip_frac"], "policy/grad_norm": losses["grad_norm"]})
        metrics["policy/lr"] = float(scheduler.get_last_lr()[0])
        metrics.update(
            {"time/rollout_s": t1 - t0, "time/env_s": t2 - t1, "time/update_s": t3 - t2, "time/step_s": t3 - t0}
        )
        metrics["memory/peak_mb"] = peak_memory_mb(device)
        if eval_envs is not None and (step + 1) % args.eval_every == 0:
            metrics.update(run_eval(accelerator.unwrap_model(model), processor, args, eval_envs, accelerator))
        record = logger.log(step + 1, metrics, extra={"sample_ids": gather_items(accelerator, sample_ids)})
        if args.log_replies_every and step % args.log_replies_every == 0:
            rows = [
                {
                    "sample_id": infos["sample_id"][i],
                    "reward": float(rewards[i]),
                    "iou": float(infos["iou"][i]),
                    "failure": infos["parse_failure"][i],
                    "reply": replies[i],
                }
                for i in range(len(replies))
            ]
            logger.log_replies(step + 1, rows)
        step_times.append(t3 - t0)

        # 6. checkpoint
        checkpoint_if_due(step + 1)
    logger.close()
    envs.close()
    summary = {
        "output_dir": str(output_dir),
        "steps": args.steps,
        "last": record,
        "peak_memory_mb": peak_memory_mb(device),
        "mean_step_s": float(np.mean(step_times)) if step_times else math.nan,
        "num_processes": accelerator.num_processes,
        # equal on every process when the replicas stayed in sync (see segzero_agents.distributed)
        "param_checksums": parameter_checksums(accelerator, model),
    }
    accelerator.print(json.dumps({k: v for k, v in summary.items() if k != "last"}))
    # Every rank leaves together and tears the process group down: a rank exiting while gloo's
    # threads still run aborts ("terminate called without an active exception").
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary

"""Named argument presets and the command line built from :class:`~segzero_agents.grpo.Args`.

Every ``Args`` field becomes a ``--flag`` whose help is the field's documentation. ``--preset``
fills in a preset first; flags given explicitly override it.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from segzero_agents.grpo import Args

_SEG_ZERO_8GPU: dict[str, Any] = {
    # Seg-Zero's recipe: full fine-tuning, 2 prompts x 8 GPUs = 16 prompts a step, G = 8
    "model_name_or_path": "Qwen/Qwen2.5-VL-3B-Instruct",
    "env_id": "ReasonSeg-v0",
    "dataset": "segzero-train",
    "segmenter": "sam2",
    "segmenter_kwargs": '{"model": "large", "device": "cuda"}',
    "prompts_per_step": 2,
    "group_size": 8,
    "micro_batch_size": 4,
    "eval_every": 50,
}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny-cpu": {
        # offline tiny Qwen2.5-VL, 56 px images (4 image tokens), box segmenter: a few seconds a step on CPU
        "model_name_or_path": "tiny",
        "tiny_hidden": 64,
        # a random model never writes a parseable answer (all rewards 0, nothing to learn): a short
        # supervised warm start on oracle replies gives GRPO reward differences to work with
        "warm_start_steps": 120,
        "warm_start_lr": 5e-3,
        "device": "cpu",
        "torch_threads": 1,
        "segmenter": "box",
        "image_size": 56,
        "prompts_per_step": 2,
        "group_size": 4,
        "max_new_tokens": 64,
        # a plumbing check, not a learning one (tiny-learn is that). At 1e-3 each Adam step moved the
        # policy ~0.3 nats per token (k3 KL to the warm start) and replies collapsed into garbage
        "learning_rate": 1e-4,
        "micro_batch_size": 4,
        "save_every": 2,
        "log_replies_every": 1,
        "gradient_checkpointing": False,
    },
    "tiny-learn": {
        # a learning check that fits 2 CPU cores: the tiny Qwen2.5-VL with a compact tokenizer
        # (a reply is ~21 tokens), 56 px images seen as ONE image token (28 px patches, 2 x 2 merged:
        # with 14 px patches the model needs ~3x the supervised steps before its boxes depend on the
        # image at all), the box segmenter (the mask is the predicted box), shapes level 0 (one object);
        # benchmarks/grpo_learning.py measures what GRPO gains on held-out data
        "model_name_or_path": "tiny",
        "tiny_hidden": 64,
        "tiny_patch_size": 28,
        "tiny_compact_tokenizer": True,
        "device": "cpu",
        "torch_threads": 1,
        "segmenter": "box",
        "image_size": 56,
        "dataset_kwargs": '{"level": 0}',
        # supervised steps on jittered oracle replies: the format, but only rough localisation
        # (held-out gIoU 0.13-0.31 depending on the seed; one fixed box scores 0.21)
        "warm_start_steps": 1000,
        "warm_start_lr": 1e-3,
        "warm_start_jitter": 0.1,
        "steps": 200,
        "prompts_per_step": 16,
        "group_size": 8,
        "max_new_tokens": 32,
        # measured: 3e-5 barely moves in 80 steps, 1e-3 learns as fast but lets greedy replies break
        # now and then; with shuffled rewards (no signal) 3e-4 drifts into garbage within ~100 steps
        "learning_rate": 3e-4,
        "kl_coef": 0.0,
        "loss_aggregation": "dapo",
        "micro_batch_size": 32,
        "eval_every": 25,
        "eval_samples": 64,
        "save_every": 0,
        "log_replies_every": 25,
        "gradient_checkpointing": False,
    },
    "qwen2.5-vl-3b-lora-1gpu": {
        # one 24-80 GB GPU: LoRA on the language model, reference = adapter disabled (no second copy)
        "model_name_or_path": "Qwen/Qwen2.5-VL-3B-Instruct",
        "env_id": "ReasonSeg-v0",
        "dataset": "segzero-train",
        "segmenter": "sam2",
        "segmenter_kwargs": '{"model": "large", "device": "cuda"}',
        "use_lora": True,
        "learning_rate": 1e-5,  # LoRA needs ~10x the full-fine-tuning rate
        "prompts_per_step": 2,
        "group_size": 8,
        "micro_batch_size": 2,
        "eval_every": 50,
    },
    "qwen2.5-vl-3b-full-8gpu": dict(_SEG_ZERO_8GPU),
    "qwen2.5-vl-7b-full-8gpu": {
        **_SEG_ZERO_8GPU,
        "model_name_or_path": "Qwen/Qwen2.5-VL-7B-Instruct",
        "micro_batch_size": 2,  # half the 3B micro-batch: the 7B model needs more memory per sample
    },
}
"""Presets by name. The real ones expect the model in a local folder or the hub cache
(``--model-name-or-path /path/to/Qwen2.5-VL-3B-Instruct``) and the data under ``--data-root``."""


PRESET_SUMMARIES: dict[str, str] = {
    "tiny-cpu": "fast plumbing check on CPU (seconds; it does not learn: use tiny-learn for that)",
    "tiny-learn": "the CPU learning setting of benchmarks/grpo_learning.py (about 7 minutes a run; "
    "held-out gains in benchmarks/results/grpo_learning.md)",
    "qwen2.5-vl-3b-lora-1gpu": "Qwen2.5-VL-3B, LoRA, one GPU, SAM2",
    "qwen2.5-vl-3b-full-8gpu": "Seg-Zero's recipe: Qwen2.5-VL-3B, full fine-tuning, 8 GPUs, SAM2",
    "qwen2.5-vl-7b-full-8gpu": "the same with Qwen2.5-VL-7B",
}
"""One line per preset for ``--help``."""


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser with ``--preset`` and one flag per ``Args`` field."""
    parser = argparse.ArgumentParser(
        description="GRPO training of a Qwen-VL policy against the reasoning-segmentation env.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="Named set of defaults (agents/presets.py): "
        + "; ".join(f"{name}: {PRESET_SUMMARIES.get(name, '')}" for name in sorted(PRESETS))
        + ".",
    )
    for f in dataclasses.fields(Args):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if f.type in ("bool", bool):
            # --resume alone means true; --resume false is accepted too
            parser.add_argument(flag, type=_to_bool, nargs="?", const=True, default=None, help=help_text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=None, help=f"{help_text} (default: {f.default!r})")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """Parse the command line into ``Args``: field defaults, then the preset, then explicit flags."""
    ns = build_parser().parse_args(argv)
    values: dict[str, Any] = dict(PRESETS[ns.preset]) if ns.preset else {}
    for f in dataclasses.fields(Args):
        given = getattr(ns, f.name)
        if given is not None:
            values[f.name] = given
    return Args(**values)

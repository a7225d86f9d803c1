"""Loading the policy (a Qwen-VL model), its processor and the frozen reference for the KL term."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from segzero_env.hf.weights import TINY_MODEL, resolve_model

LANGUAGE_MODEL_LINEAR_LAYERS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
"""LoRA targets: every linear layer of the language model, none of the vision tower (its MLP uses the
same layer names, hence the ``language_model`` anchor)."""


@dataclass
class PolicyBundle:
    """The trainable policy and what it needs.

    Attributes:
        model: The policy (a ``peft`` model when LoRA is on).
        processor: Its processor (tokenizer + image processor + chat template).
        ref_model: A frozen copy for the KL term, or ``None`` when ``kl_coef`` is 0 or when LoRA is
            on (the reference is then the same network with the adapter disabled).
        uses_lora: Whether ``model`` is a LoRA-wrapped model.
    """

    model: Any
    processor: Any
    ref_model: Any | None
    uses_lora: bool


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``"auto"`` means bfloat16 on CUDA and float32 on CPU (CPU bf16 matmuls are slow and lossy)."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}: use 'auto', 'bfloat16' or 'float32'")
    return table[name]


def load_policy(
    model_name_or_path: str,
    *,
    device: torch.device,
    dtype: str = "auto",
    seed: int = 0,
    tiny_hidden: int = 32,
    tiny_patch_size: int = 14,
    tiny_compact_max_coordinate: int | None = None,
    attn_implementation: str | None = None,
    use_lora: bool = False,
    lora_r: int = 64,
    lora_alpha: int = 128,
    lora_dropout: float = 0.05,
    gradient_checkpointing: bool = False,
    freeze_vision_tower: bool = False,
    kl_coef: float = 5e-3,
) -> PolicyBundle:
    """Load (or build) the policy, wrap it for LoRA or full fine-tuning, and set up the reference.

    Args:
        model_name_or_path: A local folder, a hub id (see ``segzero_env.hf.weights.resolve_model``), or
            ``"tiny"`` for the offline tiny model.
        device: Where the weights go.
        dtype: ``"auto"``, ``"bfloat16"`` or ``"float32"`` (see :func:`resolve_dtype`).
        seed: Weight seed of the tiny model.
        tiny_hidden: Hidden size of the tiny model.
        tiny_patch_size: Vision patch side of the tiny model, in pixels.
        tiny_compact_max_coordinate: Give the tiny model the compact tokenizer (one token per
            coordinate below this, the image side; see :func:`segzero_env.hf.tiny.build_tiny_qwen25vl`).
        attn_implementation: ``"sdpa"``, ``"flash_attention_2"`` or ``None`` (transformers' default).
        use_lora: Train LoRA adapters on the language model instead of every weight.
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling numerator.
        lora_dropout: Dropout on the LoRA input.
        gradient_checkpointing: Recompute activations in the backward pass (saves memory on GPU).
        freeze_vision_tower: Keep the vision encoder's weights fixed in full fine-tuning.
        kl_coef: When 0, no reference is needed and none is built.

    Raises:
        segzero_env.hf.weights.ModelNotFoundError: The model is nowhere to be found (the message
            lists every place tried and the fixes).
    """
    torch_dtype = resolve_dtype(dtype, device)
    if model_name_or_path == TINY_MODEL:
        from segzero_env.hf.tiny import build_tiny_qwen25vl

        model, processor = build_tiny_qwen25vl(
            seed=seed,
            hidden=tiny_hidden,
            compact_max_coordinate=tiny_compact_max_coordinate,
            patch_size=tiny_patch_size,
        )
        model = model.to(dtype=torch_dtype)
    else:
        # local folder, hub cache, then hub; a missing model fails in seconds listing every place tried
        location = resolve_model(model_name_or_path, what="policy model (--model-name-or-path)").name_or_path
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(location)
        if Path(location).is_dir():
            from segzero_env.hf.tiny import restore_saved_pre_tokenizer

            restore_saved_pre_tokenizer(processor, location)
        kwargs: dict[str, Any] = {"dtype": torch_dtype}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        model = AutoModelForImageTextToText.from_pretrained(location, **kwargs)
    model.to(device)
    # generation must stop at the end of the assistant turn, which is what the chat template closes with
    model.generation_config.eos_token_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id

    ref_model = None
    if kl_coef != 0.0 and not use_lora:
        ref_model = copy.deepcopy(model).eval()
        ref_model.requires_grad_(False)

    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # the KV cache is useless during the training forward and conflicts with checkpointing
        model.config.use_cache = False
    if use_lora:
        from peft import LoraConfig, get_peft_model

        if gradient_checkpointing:
            # frozen embeddings would otherwise cut the gradient path through checkpointed blocks
            model.enable_input_require_grads()
        config = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=LANGUAGE_MODEL_LINEAR_LAYERS,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    elif freeze_vision_tower:
        for name, param in model.named_parameters():
            if ".visual." in f".{name}":
                param.requires_grad_(False)
    return PolicyBundle(model=model, processor=processor, ref_model=ref_model, uses_lora=use_lora)


def trainable_parameters(model: Any) -> list[tuple[str, torch.nn.Parameter]]:
    """``(name, parameter)`` for every parameter the optimizer updates."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]

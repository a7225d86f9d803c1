"""``hf``: any transformers image-text-to-text model, from a local path or a hub id."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from segzero_env.hf.weights import TINY_MODEL, resolve_model
from segzero_env.policies.base import PolicyBase, check_batch, frame_size, prompt_text
from segzero_env.policies.replies import FRAMES, reply_in_env_frame


class HFPolicy(PolicyBase):
    """Generate replies with a vision-language model (Qwen2.5-VL, Qwen2-VL, Qwen3-VL, Seg-Zero checkpoints).

    Each observation becomes a chat (system turn, then the image and the env's prompt), the batch is
    left-padded and generated in chunks of ``batch_size``, greedy unless ``do_sample``. Models that
    write a relative ``0..1000`` frame (Qwen2-VL, Qwen3-VL) have their answers rescaled to the env's
    ``S x S`` frame.

    Args:
        model: Local folder or hub id (found by :func:`segzero_env.hf.weights.resolve_model`: the folder,
            the hub cache, then the hub; a ``ModelNotFoundError`` lists what was tried), ``"tiny"`` for
            the offline tiny Qwen2.5-VL with random weights (tests), or an already built model (then
            ``processor`` is required).
        processor: Processor instance or path; defaults to ``model`` when that is a path or id.
        device: Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"`` for ``device_map="auto"``).
        dtype: ``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        max_new_tokens: Generation budget per reply.
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature (used only with ``do_sample``).
        top_p: Nucleus sampling mass (used only with ``do_sample``).
        batch_size: Largest number of prompts per ``generate`` call; ``None`` = the whole batch.
        system_prompt: System turn text.
        coordinate_frame: ``"auto"`` (from ``config.model_type``), ``"absolute"`` or ``"relative-1000"``.
        attn_implementation: Passed to ``from_pretrained`` (``"sdpa"``, ``"flash_attention_2"``, ...).
        trust_remote_code: Passed to ``from_pretrained``.
        seed: Torch seed set on ``reset`` (matters only with ``do_sample``).
    """

    name = "hf"

    def __init__(
        self,
        model: Any,
        processor: Any = None,
        device: str = "cpu",
        dtype: str = "auto",
        max_new_tokens: int = 1024,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch_size: int | None = None,
        system_prompt: str | None = None,
        coordinate_frame: str = "auto",
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        seed: int = 0,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        resolved = None
        if isinstance(model, (str, os.PathLike)) and str(model) != TINY_MODEL:
            # resolved before the heavy imports: a missing model fails in seconds, listing every place tried
            resolved = resolve_model(model, what="hf policy model").name_or_path
        if isinstance(processor, (str, os.PathLike)):
            processor = resolve_model(processor, what="hf policy processor", weights=False).name_or_path

        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from segzero_env.hf.chat import SYSTEM_PROMPT
        from segzero_env.hf.chat import coordinate_frame as family_frame

        if resolved is not None:
            load_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
            if dtype != "auto":
                load_kwargs["dtype"] = getattr(torch, dtype)
            else:
                load_kwargs["dtype"] = "auto"
            if attn_implementation:
                load_kwargs["attn_implementation"] = attn_implementation
            if device == "auto":
                load_kwargs["device_map"] = "auto"
            self.model = AutoModelForImageTextToText.from_pretrained(resolved, **load_kwargs)
            if processor is None:
                processor = resolved
        elif isinstance(model, (str, os.PathLike)):  # the tiny model
            from segzero_env.hf.tiny import build_tiny_qwen25vl

            self.model, tiny_processor = build_tiny_qwen25vl(seed=seed)
            processor = tiny_processor if processor is None else processor
        else:
            self.model = model
            if processor is None:
                raise ValueError("HFPolicy got a model object without a processor; pass processor= as well")
        if isinstance(processor, str):
            folder = processor
            processor = AutoProcessor.from_pretrained(folder, trust_remote_code=trust_remote_code)
            if os.path.isdir(folder):
                from segzero_env.hf.tiny import restore_saved_pre_tokenizer

                restore_saved_pre_tokenizer(processor, folder)
        self.processor = processor
        if device != "auto":
            self.model.to(device)
        self.model.eval()
        self.device = next(self.model.parameters()).device
        self.model_type = str(getattr(self.model.config, "model_type", ""))
        if coordinate_frame == "auto":
            try:
                coordinate_frame = family_frame(self.model_type)
            except KeyError as err:
                raise ValueError(
                    f"cannot tell which coordinate frame a {self.model_type!r} model writes; "
                    f"pass coordinate_frame= one of {', '.join(FRAMES)}"
                ) from err
        if coordinate_frame not in FRAMES:
            raise ValueError(f"coordinate_frame must be 'auto' or one of {', '.join(FRAMES)}, got {coordinate_frame!r}")
        self.coordinate_frame = coordinate_frame
        self.system_prompt = SYSTEM_PROMPT if system_prompt is None else system_prompt
        self.batch_size = batch_size
        self.generate_kwargs: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "do_sample": bool(do_sample)}
        if do_sample:
            self.generate_kwargs.update(temperature=float(temperature), top_p=float(top_p))
        self.seed = seed
        self.generated_tokens = 0

    def reset(self, seed: int | None = None) -> None:
        """Seed torch so sampled generations repeat."""
        import torch

        if seed is not None:
            self.seed = seed
        torch.manual_seed(self.seed)

    def act(self, observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]) -> list[str]:
        """Generate one reply per observation, ``batch_size`` prompts per ``generate`` call."""
        check_batch(observations, infos)
        chunk = self.batch_size or max(len(observations), 1)
        replies: list[str] = []
        for start in range(0, len(observations), chunk):
            replies.extend(self._generate(observations[start : start + chunk], infos[start : start + chunk]))
        return replies

    def _generate(self, observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]) -> list[str]:
        import torch

        from segzero_env.hf.chat import batch_inputs, decode_replies

        images = [obs["image"] for obs in observations]
        prompts = [prompt_text(obs, info) for obs, info in zip(observations, infos, strict=True)]
        inputs = batch_inputs(self.processor, images, prompts, system=self.system_prompt).to(self.device)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **self.generate_kwargs)
        completion = output[:, inputs["input_ids"].shape[1] :]
        self.generated_tokens += int(completion.numel())
        texts = decode_replies(self.processor, completion)
        return [
            reply_in_env_frame(text, self.coordinate_frame, frame_size(obs, info))
            for text, obs, info in zip(texts, observations, infos, strict=True)
        ]

    def stats(self) -> dict[str, Any]:
        """Model family, coordinate frame and generated-token count."""
        return {"model_type": self.model_type, "coordinate_frame": self.coordinate_frame}

    def close(self) -> None:
        """Drop the model so its memory can be freed."""
        self.model = None
        self.processor = None

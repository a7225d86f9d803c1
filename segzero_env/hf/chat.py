"""Chat messages, processor batches and coordinate frames for Qwen-VL policies.

The environment hands out an image and a filled-in prompt (``info["prompt"]``); a Qwen-VL model
needs them as a chat (system turn, then a user turn with the image first and the text after),
tokenized with left padding so every prompt ends where generation starts. Replies come back as
token ids and are decoded to the strings the environment's ``step`` takes.

Qwen2.5-VL writes absolute pixel coordinates of the image it saw; Qwen2-VL and Qwen3-VL write a
relative ``0..1000`` frame. :func:`reply_to_env_frame` rewrites a relative-frame reply into the
env's ``S x S`` frame so the same rewards apply to every family:

>>> coordinate_frame("qwen2_5_vl"), coordinate_frame("qwen3_vl")
('absolute', 'relative-1000')
>>> scale_value(500, "relative-1000", image_size=840)
420.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SYSTEM_PROMPT = "You are a helpful assistant."
"""The system turn Qwen-VL instruct models were trained with (and Seg-Zero used)."""

COORDINATE_FRAMES: dict[str, str] = {
    "qwen2_5_vl": "absolute",
    "qwen2_vl": "relative-1000",
    "qwen3_vl": "relative-1000",
    "qwen3_vl_moe": "relative-1000",
}
"""How each model family writes coordinates: ``absolute`` pixels of the image it saw, or ``relative-1000``
(``0..1000`` across each side, whatever the image size)."""

RELATIVE_SCALE = 1000.0


def build_messages(prompt: str, *, system: str | None = SYSTEM_PROMPT, image: Any = None) -> list[dict[str, Any]]:
    """Build the conversation for one observation: optional system turn, then image and prompt.

    Args:
        prompt: The env's filled-in prompt text (``info["prompt"]``).
        system: System turn text; ``None`` leaves it out (the tiny template then adds the default).
        image: Optional image to embed in the image part (TRL-style conversational datasets carry it
            there); when ``None`` the part is a bare placeholder and the pixels go to the processor.

    Returns:
        A list of ``{"role", "content"}`` messages; the user content is a list of typed parts.

    >>> build_messages("Find it.")[1]["content"]
    [{'type': 'image'}, {'type': 'text', 'text': 'Find it.'}]
    """
    image_part: dict[str, Any] = {"type": "image"}
    if image is not None:
        image_part["image"] = image
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": [image_part, {"type": "text", "text": prompt}]})
    return messages


def batch_inputs(
    processor: Any,
    images: Sequence[np.ndarray],
    prompts: Sequence[str],
    *,
    system: str | None = SYSTEM_PROMPT,
) -> Any:
    """Tokenize a batch of (image, prompt) pairs, left-padded, ready for ``model.generate``.

    Args:
        processor: A Qwen-VL processor (tokenizer + image processor + chat template).
        images: ``S x S x 3`` uint8 arrays, one per prompt.
        prompts: Filled-in prompt texts, one per image.
        system: System turn text (see :func:`build_messages`).

    Returns:
        The processor's ``BatchFeature`` (``input_ids``, ``attention_mask``, ``pixel_values``,
        ``image_grid_thw``, ...) as torch tensors.

    Raises:
        ValueError: If ``images`` and ``prompts`` differ in length or are empty.
    """
    if len(images) != len(prompts) or not prompts:
        raise ValueError(
            f"need one image per prompt and at least one pair, got {len(images)} images and {len(prompts)} prompts"
        )
    texts = [
        processor.apply_chat_template(build_messages(p, system=system), add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]
    tokenizer = processor.tokenizer
    previous_side = tokenizer.padding_side
    # left padding keeps every prompt's last token at the same position, where generation continues
    tokenizer.padding_side = "left"
    try:
        return processor(text=texts, images=list(images), padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = previous_side


def decode_replies(processor: Any, completion_ids: Any, completion_mask: Any | None = None) -> list[str]:
    """Decode generated token ids (the part after the prompt) into reply strings.

    Args:
        processor: The processor (or tokenizer) that produced the prompt.
        completion_ids: ``N x T`` generated ids, prompt excluded.
        completion_mask: Optional ``N x T`` 0/1 mask of the tokens that belong to each reply (up to and
            including the end-of-turn token); tokens outside it are dropped before decoding.

    Returns:
        ``N`` strings with special tokens removed.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    rows = completion_ids.tolist()
    if completion_mask is not None:
        masks = completion_mask.tolist()
        rows = [[t for t, keep in zip(row, mask, strict=True) if keep] for row, mask in zip(rows, masks, strict=True)]
    return tokenizer.batch_decode(rows, skip_special_tokens=True)


def coordinate_frame(model_type: str) -> str:
    """Return the coordinate frame a model family writes (``absolute`` or ``relative-1000``).

    Args:
        model_type: ``model.config.model_type`` (``qwen2_5_vl``, ``qwen2_vl``, ``qwen3_vl``, ...).

    Raises:
        KeyError: For an unknown family, naming the known ones.
    """
    try:
        return COORDINATE_FRAMES[model_type]
    except KeyError:
        known = ", ".join(sorted(COORDINATE_FRAMES))
        raise KeyError(
            f"unknown model_type {model_type!r}: known {known}; add it to COORDINATE_FRAMES with its frame"
        ) from None


def scale_value(value: float, frame: str, image_size: int) -> float:
    """Map one coordinate from ``frame`` to the env's ``S x S`` absolute frame.

    >>> scale_value(12.0, "absolute", 840)
    12.0
    """
    if frame == "absolute":
        return float(value)
    if frame == "relative-1000":
        return float(value) * image_size / RELATIVE_SCALE
    raise ValueError(f"unknown coordinate frame {frame!r}: use 'absolute' or 'relative-1000'")


def objects_to_env_frame(objects: Sequence[Any], frame: str, image_size: int) -> list[Any]:
    """Rescale parsed objects (``ObjectAnswer``) from ``frame`` to the ``S x S`` frame."""
    from segzero_env.types import ObjectAnswer

    out = []
    for obj in objects:
        box = tuple(scale_value(v, frame, image_size) for v in obj.box)
        points = tuple((scale_value(x, frame, image_size), scale_value(y, frame, image_size)) for x, y in obj.points)
        out.append(ObjectAnswer(box=box, points=points))  # type: ignore[arg-type]
    return out


def reply_to_env_frame(reply: str, model_type: str, image_size: int) -> str:
    """Rewrite a reply's answer into the env's ``S x S`` absolute frame; absolute-frame models pass through.

    The reply is read with the package's one parser; only the answer body is replaced (by the
    canonical writer's output), so the reasoning text and the tags are kept. A reply that cannot be
    parsed is returned unchanged: the env scores its failure as usual.

    Args:
        reply: The model's reply text.
        model_type: ``model.config.model_type`` of the model that wrote it.
        image_size: The env's ``S``.
    """
    frame = coordinate_frame(model_type)
    if frame == "absolute":
        return reply
    from segzero_env.answers import format_reply
    from segzero_env.parsing import parse_reply

    parsed = parse_reply(reply)
    if not parsed.ok or not parsed.answer_text or parsed.answer_text not in reply:
        return reply
    rescaled = objects_to_env_frame(parsed.objects, frame, image_size)
    canonical = parse_reply(format_reply(rescaled, schema=parsed.schema.value if parsed.schema else "seg-zero"))
    if canonical.answer_text is None:
        return reply
    return reply.replace(parsed.answer_text, canonical.answer_text, 1)

"""A tiny, real Qwen2.5-VL built offline: random weights, a BPE tokenizer trained on the spot.

Tests and CPU smoke runs need the exact classes a real checkpoint uses (the processor's image
tokens, multimodal rotary positions, ``generate``) without a hub download. This module builds
them from configs: a 2-layer text model, a 2-block vision tower and a byte-level BPE tokenizer
with Qwen's special tokens. The result saves and reloads with ``save_pretrained`` /
``from_pretrained`` like any local checkpoint.

>>> model, processor = build_tiny_qwen25vl(seed=0, hidden=32)
>>> model.config.model_type
'qwen2_5_vl'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Qwen's special tokens, in the order they get ids 0..6 in the tiny vocabulary."""

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""A small Qwen-style chat template: images become ``<|vision_start|><|image_pad|><|vision_end|>``
(the processor expands the pad to one token per merged patch), a default system turn is added."""

_CORPUS_LINES: tuple[str, ...] = (
    "You are a helpful assistant.",
    "Please find 'the red circle' with bbox and points.",
    "Compare the difference between objects and find the most closely matched one.",
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
    "Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format.",
    "i.e., <think> thinking process here </think>",
    "<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>",
    "<think> The blue square is at the top left of the image. </think> "
    '<answer>{"bbox": [12, 8, 40, 33], "points_1": [20, 15], "points_2": [30, 25]}</answer>',
    '<answer>[{"bbox_2d": [1, 2, 30, 44], "point_2d": [15, 20]}]</answer>',
    "the green triangle, the yellow star, the largest shape, the object on the right, the smallest one",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 20 25 28 30 32 40 50 56 64 75 84 99 100 112 128 200 255 420 840",
    "user assistant system image text query think answer bbox points_1 points_2 point_2d bbox_2d",
)


def _compact_corpus(max_coordinate: int) -> list[str]:
    """Lines that make the compact tokenizer's merges: the Seg-Zero prompt, replies and every coordinate."""
    from segzero_env.answers import format_reply
    from segzero_env.datasets.shapes_vocab import COLOURS, SHAPES
    from segzero_env.prompts import SEG_ZERO

    queries = [f"the {c} {s}" for c in (*COLOURS, "") for s in (*SHAPES, "shape")]
    rng = range(0, max_coordinate, max(1, max_coordinate // 7))
    replies = [format_reply(box=[a, a, b, b], points=[[a, b], [b, a]], think="the target") for a in rng for b in rng]
    numbers = " ".join(str(v) for v in range(max_coordinate))
    return [*(SEG_ZERO.format(q) for q in queries), *replies * 4, *[numbers] * 4]


def _train_tokenizer(vocab_size: int, compact_max_coordinate: int | None = None) -> Any:
    """Train a byte-level BPE on the small corpus and wrap it in Qwen's tokenizer class.

    With ``compact_max_coordinate`` the pre-tokenizer only isolates numbers (instead of Qwen's
    words / single digits split), and the corpus holds the Seg-Zero prompt, well-formed replies and
    every integer below the limit: each coordinate becomes one token and the reply's fixed text a
    handful, so a whole reply takes about 25 tokens instead of about 60.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    corpus = list(_CORPUS_LINES) * 4
    if compact_max_coordinate is None:
        # train with the same pre-tokenization Qwen's tokenizer applies (one digit per token, etc.)
        split = pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False)
    else:
        split = pre_tokenizers.Split(Regex(r"\d+"), behavior="isolated", invert=False)
        corpus += _compact_corpus(compact_max_coordinate)
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        # every byte is in the base alphabet, so any reply text (and random bytes) can be encoded
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # repetition makes the frequent reply fragments (tags, keys, digits) merge into single tokens
    bpe.train_from_iterator(corpus, trainer=trainer)
    # the learned merges are only exposed through the JSON form of the trained tokenizer
    state = json.loads(bpe.to_str())
    vocab = state["model"]["vocab"]
    merges = [tuple(pair) if isinstance(pair, list) else tuple(pair.split(" ")) for pair in state["model"]["merges"]]
    tokenizer = Qwen2TokenizerFast(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        chat_template=CHAT_TEMPLATE,
    )
    # the wrapper installs Qwen's own pre-tokenizer: keep the one the merges were learned with
    tokenizer.backend_tokenizer.pre_tokenizer = bpe.pre_tokenizer
    tokenizer.padding_side = "left"
    return tokenizer


MERGE_SIZE = 2
"""Vision patches merged into one image token along each side (the model and its processor must agree)."""


def build_tiny_qwen25vl(
    seed: int = 0,
    hidden: int = 64,
    vocab_size: int | None = None,
    compact_max_coordinate: int | None = None,
    patch_size: int = 14,
) -> tuple[Any, Any]:
    """Build a random-weight Qwen2.5-VL model and its processor, with no network access.

    Args:
        seed: Seed for the weight initialisation (the tokenizer is deterministic regardless).
        hidden: Text and vision hidden size; 32 or 64 keep a forward pass in milliseconds on CPU.
            It must be a multiple of 16 (4 attention heads, rotary sections need an even split).
        vocab_size: Size of the trained BPE vocabulary (specials and the 256 byte symbols included);
            default 600, or 2048 with a compact tokenizer.
        compact_max_coordinate: Train a compact tokenizer in which every integer below this (the
            image side) is one token and the Seg-Zero prompt and reply text merge into few tokens
            (see :func:`_train_tokenizer`); ``None`` keeps Qwen's one-digit-per-token split.
        patch_size: Vision patch side in pixels; 2 x 2 patches merge into one image token, so
            images pass through unresized when their sides are multiples of ``2 * patch_size``.

    Returns:
        ``(model, processor)``: a ``Qwen2_5_VLForConditionalGeneration`` in eval mode on CPU in
        float32, and a ``Qwen2_5_VLProcessor`` whose images pass through unresized when their sides
        are multiples of ``2 * patch_size`` between 56 and 840 px.

    Raises:
        ValueError: If ``hidden`` is not a positive multiple of 16.
    """
    if hidden <= 0 or hidden % 16:
        raise ValueError(f"hidden={hidden} must be a positive multiple of 16 (4 heads, rotary sections); try 32 or 64")
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    if vocab_size is None:
        vocab_size = 600 if compact_max_coordinate is None else 2048
    tokenizer = _train_tokenizer(vocab_size, compact_max_coordinate)
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    num_heads = 4
    head_dim = hidden // num_heads
    half = head_dim // 2
    # temporal / height / width rotary sections must sum to head_dim / 2
    mrope_section = [half // 2, half // 4, half - half // 2 - half // 4]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": hidden * 2,
            "num_hidden_layers": 2,
            "num_attention_heads": num_heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope_section},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": hidden,
            "intermediate_size": hidden * 2,
            "num_heads": num_heads,
            "out_hidden_size": hidden,
            "patch_size": patch_size,
            "spatial_merge_size": MERGE_SIZE,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]

    pixel_range = {"min_pixels": 28 * 28, "max_pixels": 840 * 840}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=patch_size, merge_size=MERGE_SIZE, **pixel_range),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixel_range),
        chat_template=CHAT_TEMPLATE,
    )
    return model, processor


def restore_saved_pre_tokenizer(processor: Any, folder: str | os.PathLike[str]) -> None:
    """Give a processor loaded from ``folder`` the pre-tokenizer saved in its ``tokenizer.json``.

    transformers' Qwen2 tokenizer installs Qwen's own pre-tokenizer when it loads, whatever the file
    says. For a real Qwen checkpoint the two are the same; for a saved tiny model with the compact
    tokenizer (one token per coordinate) they differ, and the reloaded policy would read every
    prompt as different tokens than it was trained on (its replies then never parse). Folders
    without a ``tokenizer.json`` are left alone.
    """
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return
    from tokenizers import Tokenizer

    saved = Tokenizer.from_file(str(path)).pre_tokenizer
    tokenizer = getattr(processor, "tokenizer", processor)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if saved is not None and backend is not None:
        backend.pre_tokenizer = saved

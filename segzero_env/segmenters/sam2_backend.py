"""SAM2 behind the segmenter protocol: one encoder pass per distinct image, one decoder call per image."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from segzero_env.segmenters._prompts import CleanPrompt
from segzero_env.segmenters.cached_backend import EMPTY_LOGIT, CachedPromptSegmenter, ImageFeatures, tensor_bytes
from segzero_env.segmenters.sam2_build import build_network
from segzero_env.segmenters.weights import model_spec, resolve_checkpoint

__all__ = ["EMPTY_LOGIT", "ImageFeatures", "SAM2Segmenter"]


class SAM2Segmenter(CachedPromptSegmenter):
    """SAM2 (``sam2`` package) with an image-embedding cache and batched prompt decoding.

    Weights: from ``checkpoint``, ``$SEGZERO_SAM2_CHECKPOINT``, ``$SEGZERO_SAM2_DIR`` or
    ``~/.cache/segzero_env/sam2`` (official file names such as ``sam2.1_hiera_large.pt``), then
    the hub id (``facebook/sam2.1-hiera-large``) when online; otherwise ``WeightsNotFoundError``
    lists what was tried (order and details: ``segmenters.weights``). ``random_weights=True``
    builds the untrained network on purpose (seeded, so identical across instances; a warning is
    logged): for tests and speed measurements only, never a fallback.

    Mask choice (``multimask``): ``"best"`` (Seg-Zero's evaluation: three candidate masks, the one
    with the highest predicted IoU kept) or ``"single"`` (the single-mask output, which SAM2 swaps
    for the best candidate when it is unstable).

    Cache: keyed by ``(image_key, BLAKE2b of the pixels)``, so a wrong key can never return
    another image's features; LRU bounded by ``cache_bytes`` (default 1 GiB on CUDA, 512 MiB
    elsewhere; 0 disables it). Bytes per cached image, measured on the CPU with random weights
    (the same for every size, since the neck and the decoder's high-res projections have fixed
    widths): 16,777,216 (16 MiB) in float32 for tiny, small, base+ and large (2.1 and 2.0);
    10,485,760 (10 MiB) under bfloat16 autocast, the CUDA default (the two high-res maps become
    bfloat16; the 64 x 64 embedding stays float32). So 1 GiB holds 64 images in float32, 102 in
    bfloat16.

    Batching: ``segment`` encodes the image once (or takes it from the cache) and decodes ALL of
    its prompts in one decoder call (``B`` boxes with ``B x N`` points). Prompts of different
    shapes (with / without box, different click counts, with / without ``mask_input``) go in
    one call per shape. Every decoder call holds exactly ``decode_batch_size`` prompts (default 8,
    Seg-Zero's group size; a short call is padded by repeating its last prompt), because the
    decoder's float rounding depends on the batch size: with a fixed size a prompt's mask is
    bit-identical whether it is decoded alone or inside a group, so the single env and the group
    vector env give exactly the same rewards. ``pad_decode_batch=False`` drops the padding
    (masks then agree with one-by-one decoding to about one pixel in a million);
    ``decode_batch_size=None`` decodes all of an image's prompts in one call.
    ``segment_many`` encodes the distinct uncached images of all requests, ``encode_batch_size``
    at a time. The default of 1 keeps features bit-identical to a single image's; larger
    batches are faster on a GPU but change the features by float rounding (about one mask pixel
    in ten thousand).

    Prompts: the shared rules of ``segmenters._prompts`` (non-finite boxes dropped, boxes clipped,
    boxes outside the image dropped, points clipped to the border). A zero-area box is passed to
    SAM2 as is (two equal corners). A prompt with no box and no point gets an empty mask (and
    logits of -32) without running the network, even if it carries a ``mask_input``. Labels 1
    and 0 are positive and negative clicks.

    Refinement: ``Prompt.mask_input`` (``256 x 256`` logits) is passed to the prompt encoder;
    ``segment_with_logits`` / ``segment_many_with_logits`` also return the chosen mask's low-res
    logits (clamped to [-32, 32]) to feed back on the next turn, and its predicted IoU.

    Masks come back at the original resolution as bool ``B x H x W``. Everything runs under
    ``torch.inference_mode()``; on CUDA under bfloat16 autocast by default.

    Args:
        model: ``"large"``, ``"base+"``, ``"small"`` or ``"tiny"`` (aliases ``l``, ``b+``,
            ``base_plus``, ``s``, ``t``).
        version: ``"2.1"`` or ``"2.0"``.
        checkpoint: Explicit checkpoint file (``{"model": state_dict}`` or a bare state dict).
        random_weights: Build the untrained network (tests, CPU benchmarks).
        device: ``"auto"`` (CUDA, then MPS, then CPU) or a torch device string.
        multimask: ``"best"`` or ``"single"``.
        cache_bytes: Byte bound of the embedding cache; ``None`` for the default above.
        dtype: ``"auto"`` (bfloat16 autocast on CUDA, float32 elsewhere), ``"bfloat16"`` or ``"float32"``.
        encode_batch_size: Images per encoder pass in ``segment_many``.
        decode_batch_size: Prompts per decoder call; ``None`` for all of an image's prompts at once.
        pad_decode_batch: Pad every decoder call to ``decode_batch_size`` prompts (bit-exact masks).
        allow_hub: Whether the hub may be consulted for weights.
        seed: Initialisation seed for ``random_weights``.

    Attributes:
        encode_calls: Images passed through the encoder (one per distinct uncached image).
        encoder_batches: Encoder forward passes.
        decode_calls: Decoder calls.
        weights_source: Where the weights came from (``"random"``, ``"argument:/path"``, ...).
        cache: The :class:`~segzero_env.segmenters.cache.ByteLRUCache` of :class:`ImageFeatures`.
    """

    name = "sam2"

    def __init__(
        self,
        model: str = "large",
        version: str = "2.1",
        checkpoint: str | os.PathLike | None = None,
        random_weights: bool = False,
        device: str = "auto",
        multimask: str = "best",
        cache_bytes: int | None = None,
        dtype: str = "auto",
        encode_batch_size: int = 1,
        decode_batch_size: int | None = 8,
        pad_decode_batch: bool = True,
        allow_hub: bool = True,
        seed: int = 0,
    ) -> None:
        self.spec = model_spec(model, version)
        if not random_weights:  # looked up before torch and sam2 load, so a missing checkpoint fails in a second
            resolve_checkpoint(self.spec, checkpoint, allow_hub=allow_hub)
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        self._setup(device, multimask, cache_bytes, dtype, encode_batch_size, decode_batch_size, pad_decode_batch)
        network, self.weights_source = build_network(
            self.spec, checkpoint=checkpoint, random_weights=random_weights, allow_hub=allow_hub, seed=seed
        )
        self.model = network.to(self.device).eval()
        self.predictor = SAM2ImagePredictor(self.model)

    def __repr__(self) -> str:
        return (
            f"SAM2Segmenter(model={self.spec.size!r}, version={self.spec.version!r}, device={self.device!r}, "
            f"multimask={self.multimask!r}, dtype={self.dtype!r}, weights={self.weights_source!r})"
        )

    def close(self) -> None:
        """Drop the cache and the predictor's state; free accelerator memory."""
        self.predictor.reset_predictor()
        super().close()

    def _encode(self, images: list[np.ndarray]) -> list[ImageFeatures]:
        """One encoder pass over ``images`` through the predictor's batch path."""
        self.predictor.set_image_batch(images)
        # set_image_batch leaves the encoder output in the predictor's state; take it and let the
        # predictor forget it, so the cache alone decides what stays in memory.
        batch = self.predictor._features
        self.predictor.reset_predictor()
        several = len(images) > 1
        out = []
        for i, image in enumerate(images):
            tensors = (batch["image_embed"][i : i + 1], *(f[i : i + 1] for f in batch["high_res_feats"]))
            if several:  # clone slices of a batch so each cache entry owns exactly its own bytes
                tensors = tuple(t.clone() for t in tensors)
            out.append(ImageFeatures(tensors, (int(image.shape[0]), int(image.shape[1])), tensor_bytes(tensors)))
        return out

    def _decode_group(self, feats: ImageFeatures, prompts: Sequence[CleanPrompt]) -> tuple[Any, Any]:
        """Prompt encoder + mask decoder for prompts of one shape, exactly as the predictor runs them."""
        torch = self._torch
        height, width = feats.orig_hw
        coords, labels = self._prompt_arrays(prompts)
        points = torch.as_tensor(coords, dtype=torch.float32, device=self.device)
        points[..., 0] = points[..., 0] / width
        points[..., 1] = points[..., 1] / height
        points = points * self.model.image_size
        point_labels = torch.as_tensor(labels, dtype=torch.int32, device=self.device)
        mask_input = None
        if prompts[0].mask_input is not None:
            stacked = np.stack([p.mask_input for p in prompts])[:, None]
            mask_input = torch.as_tensor(stacked, dtype=torch.float32, device=self.device)
        sparse, dense = self.model.sam_prompt_encoder(points=(points, point_labels), boxes=None, masks=mask_input)
        image_embed, *high_res = feats.tensors
        low_res, iou, _, _ = self.model.sam_mask_decoder(
            image_embeddings=image_embed,
            image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=self.multimask == "best",
            repeat_image=len(prompts) > 1,
            high_res_features=high_res,
        )
        return low_res, iou

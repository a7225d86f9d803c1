"""SAM2 behind the segmenter protocol: one encoder pass per distinct image, one decoder call per image."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segzero_env.devices import resolve_device
from segzero_env.segmenters._prompts import MASK_INPUT_SIZE, CleanPrompt, check_image, clean_prompts
from segzero_env.segmenters.base import SegmentationOutput, SegmenterBase, SegmentRequest
from segzero_env.segmenters.cache import ByteLRUCache, image_digest
from segzero_env.segmenters.sam2_build import build_network
from segzero_env.segmenters.weights import model_spec
from segzero_env.types import Prompt

EMPTY_LOGIT = -32.0
"""Low-res logit given to empty prompts: SAM2 clamps its logits to [-32, 32], so this is "surely not"."""
GIB = 1 << 30


@dataclass(frozen=True)
class ImageFeatures:
    """One image's encoder output, as cached.

    Attributes:
        image_embed: ``1 x 256 x 64 x 64`` tensor.
        high_res_feats: ``(1 x 32 x 256 x 256, 1 x 64 x 128 x 128)`` tensors.
        orig_hw: Original ``(height, width)``.
        nbytes: Bytes held by the tensors (the cache's size for this entry).
    """

    image_embed: Any
    high_res_feats: tuple[Any, ...]
    orig_hw: tuple[int, int]
    nbytes: int


class SAM2Segmenter(SegmenterBase):
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
    one call per shape rather than being padded, so a prompt's mask does not depend on the other
    prompts in its batch beyond float rounding (batched and one-by-one masks agree to about one
    pixel in a million on the CPU). ``decode_batch_size`` caps a call's size (``None``: no cap;
    1: bit-exact one-by-one decoding). ``segment_many`` encodes the distinct uncached images of
    all requests together, ``encode_batch_size`` at a time.

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
        encode_batch_size: int = 4,
        decode_batch_size: int | None = None,
        allow_hub: bool = True,
        seed: int = 0,
    ) -> None:
        import torch
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        if multimask not in ("best", "single"):
            raise ValueError(f"multimask must be 'best' (Seg-Zero) or 'single'; got {multimask!r}")
        if dtype not in ("auto", "bfloat16", "float32"):
            raise ValueError(f"dtype must be 'auto', 'bfloat16' or 'float32'; got {dtype!r}")
        if encode_batch_size < 1 or (decode_batch_size is not None and decode_batch_size < 1):
            raise ValueError("encode_batch_size and decode_batch_size must be >= 1 (decode_batch_size may be None)")
        self.spec = model_spec(model, version)
        self.device = resolve_device(device)
        self.multimask = multimask
        self.encode_batch_size = int(encode_batch_size)
        self.decode_batch_size = decode_batch_size
        device_type = self.device.split(":")[0]
        use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device_type == "cuda")
        self.dtype = "bfloat16" if use_bf16 else "float32"
        self._autocast_device = device_type if use_bf16 else None
        network, self.weights_source = build_network(
            self.spec, checkpoint=checkpoint, random_weights=random_weights, allow_hub=allow_hub, seed=seed
        )
        self.model = network.to(self.device).eval()
        self.predictor = SAM2ImagePredictor(self.model)
        if cache_bytes is None:
            cache_bytes = GIB if device_type == "cuda" else GIB // 2
        self.cache: ByteLRUCache[ImageFeatures] = ByteLRUCache(cache_bytes)
        self.encode_calls = 0
        self.encoder_batches = 0
        self.decode_calls = 0
        self._torch = torch

    def __repr__(self) -> str:
        return (
            f"SAM2Segmenter(model={self.spec.size!r}, version={self.spec.version!r}, device={self.device!r}, "
            f"multimask={self.multimask!r}, dtype={self.dtype!r}, weights={self.weights_source!r})"
        )

    @contextlib.contextmanager
    def inference_context(self) -> Iterator[None]:
        """Inference mode plus this segmenter's autocast: wrap direct uses of ``self.model`` / ``self.predictor``."""
        torch = self._torch
        with torch.inference_mode():
            if self._autocast_device is None:
                yield
            else:
                with torch.autocast(self._autocast_device, dtype=torch.bfloat16):
                    yield

    # -- protocol -------------------------------------------------------------------------------

    def segment(self, image: np.ndarray, prompts: Sequence[Prompt], image_key: str | None = None) -> np.ndarray:
        """Return ``B x H x W`` bool masks; encodes ``image`` at most once, decodes all prompts together."""
        return self.segment_with_logits(image, prompts, image_key).masks

    def segment_many(self, requests: Sequence[SegmentRequest]) -> list[np.ndarray]:
        """Masks for several images; distinct uncached images are encoded in batches."""
        return [out.masks for out in self.segment_many_with_logits(requests)]

    def segment_with_logits(
        self, image: np.ndarray, prompts: Sequence[Prompt], image_key: str | None = None
    ) -> SegmentationOutput:
        """Masks plus each chosen mask's ``256 x 256`` low-res logits and predicted IoU."""
        return self.segment_many_with_logits([SegmentRequest(image, prompts, image_key)])[0]

    def segment_many_with_logits(self, requests: Sequence[SegmentRequest]) -> list[SegmentationOutput]:
        """``segment_with_logits`` for several images: encode what is missing in batches, then decode per image."""
        images, cleaned, keys = [], [], []
        for i, request in enumerate(requests):
            image = check_image(request.image, f"requests[{i}].image")
            prompts = clean_prompts(request.prompts, image.shape[0], image.shape[1])
            needs_model = any(not p.is_empty for p in prompts)
            images.append(image)
            cleaned.append(prompts)
            keys.append((request.image_key or "", image_digest(image)) if needs_model else None)
        features: dict[tuple[str, str], ImageFeatures] = {}
        missing: dict[tuple[str, str], np.ndarray] = {}
        for key, image in zip(keys, images, strict=True):
            if key is None or key in features or key in missing:
                continue
            cached = self.cache.get(key)
            if cached is None:
                missing[key] = image
            else:
                features[key] = cached
        with self.inference_context():
            pending = list(missing.items())
            for start in range(0, len(pending), self.encode_batch_size):
                chunk = pending[start : start + self.encode_batch_size]
                for (key, _), feats in zip(chunk, self._encode([image for _, image in chunk]), strict=True):
                    features[key] = feats
                    self.cache.put(key, feats, feats.nbytes)
            return [
                self._empty_output(prompts, image.shape[:2]) if key is None else self._decode(features[key], prompts)
                for key, prompts, image in zip(keys, cleaned, images, strict=True)
            ]

    def close(self) -> None:
        """Drop the cache and free accelerator memory."""
        self.cache.clear()
        self.predictor.reset_predictor()
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()

    # -- encoder / decoder ------------------------------------------------------------------------

    def _encode(self, images: list[np.ndarray]) -> list[ImageFeatures]:
        """One encoder pass over ``images`` (already validated); returns per-image features."""
        self.predictor.set_image_batch(images)
        # set_image_batch leaves the encoder output in the predictor's state; take it and let the
        # predictor forget it, so the cache alone decides what stays in memory.
        batch = self.predictor._features
        self.predictor.reset_predictor()
        several = len(images) > 1
        out = []
        for i, image in enumerate(images):
            # Clone slices of a batch so each cache entry owns exactly its own bytes.
            embed = batch["image_embed"][i : i + 1]
            high = tuple(f[i : i + 1] for f in batch["high_res_feats"])
            if several:
                embed, high = embed.clone(), tuple(f.clone() for f in high)
            nbytes = sum(t.element_size() * t.nelement() for t in (embed, *high))
            out.append(ImageFeatures(embed, high, (int(image.shape[0]), int(image.shape[1])), nbytes))
        self.encode_calls += len(images)
        self.encoder_batches += 1
        return out

    @staticmethod
    def _empty_output(prompts: Sequence[CleanPrompt], hw: tuple[int, int]) -> SegmentationOutput:
        n = len(prompts)
        return SegmentationOutput(
            masks=np.zeros((n, hw[0], hw[1]), dtype=bool),
            low_res_logits=np.full((n, MASK_INPUT_SIZE, MASK_INPUT_SIZE), EMPTY_LOGIT, dtype=np.float32),
            scores=np.zeros(n, dtype=np.float32),
        )

    def _decode(self, feats: ImageFeatures, prompts: Sequence[CleanPrompt]) -> SegmentationOutput:
        """Decode every non-empty prompt, one decoder call per prompt shape (and ``decode_batch_size``)."""
        out = self._empty_output(prompts, feats.orig_hw)
        groups: dict[tuple[bool, int, bool], list[int]] = {}
        for i, prompt in enumerate(prompts):
            if not prompt.is_empty:
                shape = (prompt.box is not None, len(prompt.points), prompt.mask_input is not None)
                groups.setdefault(shape, []).append(i)
        for members in groups.values():
            step = self.decode_batch_size or len(members)
            for start in range(0, len(members), step):
                chunk = members[start : start + step]
                masks, logits, scores = self._decode_group(feats, [prompts[i] for i in chunk])
                out.masks[chunk], out.low_res_logits[chunk], out.scores[chunk] = masks, logits, scores
        return out

    def _decode_group(
        self, feats: ImageFeatures, prompts: Sequence[CleanPrompt]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decoder call for prompts of one shape; returns masks, low-res logits and scores of the chosen masks."""
        torch = self._torch
        import torch.nn.functional as functional

        height, width = feats.orig_hw
        coords, labels = [], []
        for prompt in prompts:
            # The box enters as two corner points labelled 2 and 3, ahead of the clicks.
            if prompt.box is not None:
                coords.append(np.concatenate([prompt.box.reshape(2, 2), prompt.points]))
                labels.append(np.concatenate([[2, 3], prompt.labels]))
            else:
                coords.append(prompt.points)
                labels.append(prompt.labels)
        points = torch.as_tensor(np.stack(coords), dtype=torch.float32, device=self.device)
        points[..., 0] = points[..., 0] / width
        points[..., 1] = points[..., 1] / height
        points = points * self.model.image_size
        point_labels = torch.as_tensor(np.stack(labels), dtype=torch.int32, device=self.device)
        mask_input = None
        if prompts[0].mask_input is not None:
            stacked = np.stack([p.mask_input for p in prompts])[:, None]
            mask_input = torch.as_tensor(stacked, dtype=torch.float32, device=self.device)
        sparse, dense = self.model.sam_prompt_encoder(points=(points, point_labels), boxes=None, masks=mask_input)
        low_res, iou, _, _ = self.model.sam_mask_decoder(
            image_embeddings=feats.image_embed,
            image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=self.multimask == "best",
            repeat_image=len(prompts) > 1,
            high_res_features=list(feats.high_res_feats),
        )
        self.decode_calls += 1
        rows = torch.arange(len(prompts), device=low_res.device)
        best = iou.argmax(dim=1)
        chosen = low_res[rows, best].float()
        full = functional.interpolate(chosen[:, None], (height, width), mode="bilinear", align_corners=False)[:, 0]
        masks = (full > self.predictor.mask_threshold).cpu().numpy()
        logits = chosen.clamp(EMPTY_LOGIT, -EMPTY_LOGIT).cpu().numpy().astype(np.float32, copy=False)
        return masks, logits, iou[rows, best].float().cpu().numpy()

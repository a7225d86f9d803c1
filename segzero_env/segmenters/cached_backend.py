"""Shared machinery of the SAM2 backends: embedding cache, encode batching, per-shape batched decoding.

A backend subclasses :class:`CachedPromptSegmenter` and supplies two methods: ``_encode``
(images -> :class:`ImageFeatures`, one encoder pass) and ``_decode_group`` (one decoder call for
prompts of one shape). Everything else (prompt rules, the cache, which images to encode, how
prompts are grouped, empty prompts) lives here once. Imports torch only when constructed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segzero_env.devices import resolve_device
from segzero_env.segmenters._prompts import MASK_INPUT_SIZE, CleanPrompt, check_image, clean_prompts
from segzero_env.segmenters.base import SegmentationOutput, SegmenterBase, SegmentRequest
from segzero_env.segmenters.cache import ByteLRUCache, image_digest
from segzero_env.types import Prompt

EMPTY_LOGIT = -32.0
"""Low-res logit given to empty prompts: SAM2 clamps its logits to [-32, 32], so this is "surely not"."""
GIB = 1 << 30


@dataclass(frozen=True)
class ImageFeatures:
    """One image's encoder output, as cached.

    Attributes:
        tensors: The backend's feature tensors (for SAM2: the ``1 x 256 x 64 x 64`` embedding,
            then the ``1 x 32 x 256 x 256`` and ``1 x 64 x 128 x 128`` high-resolution maps).
        orig_hw: Original ``(height, width)``.
        nbytes: Bytes held by the tensors (the cache's size for this entry).
    """

    tensors: tuple[Any, ...]
    orig_hw: tuple[int, int]
    nbytes: int


def tensor_bytes(tensors: Sequence[Any]) -> int:
    """Bytes held by a sequence of tensors."""
    return int(sum(t.element_size() * t.nelement() for t in tensors))


class CachedPromptSegmenter(SegmenterBase):
    """Base of the SAM2 backends (see :class:`~segzero_env.segmenters.sam2_backend.SAM2Segmenter` for the behaviour).

    Attributes:
        encode_calls: Images passed through the encoder (one per distinct uncached image).
        encoder_batches: Encoder forward passes.
        decode_calls: Decoder calls.
        cache: The :class:`~segzero_env.segmenters.cache.ByteLRUCache` of :class:`ImageFeatures`.
    """

    def _setup(
        self,
        device: str,
        multimask: str,
        cache_bytes: int | None,
        dtype: str,
        encode_batch_size: int,
        decode_batch_size: int | None,
        pad_decode_batch: bool = True,
    ) -> None:
        """Validate and store the shared options (called first by subclass constructors)."""
        import torch

        if multimask not in ("best", "single"):
            raise ValueError(f"multimask must be 'best' (Seg-Zero) or 'single'; got {multimask!r}")
        if dtype not in ("auto", "bfloat16", "float32"):
            raise ValueError(f"dtype must be 'auto', 'bfloat16' or 'float32'; got {dtype!r}")
        if encode_batch_size < 1 or (decode_batch_size is not None and decode_batch_size < 1):
            raise ValueError("encode_batch_size and decode_batch_size must be >= 1 (decode_batch_size may be None)")
        self._torch = torch
        self.device = resolve_device(device)
        self.multimask = multimask
        self.encode_batch_size = int(encode_batch_size)
        self.decode_batch_size = decode_batch_size
        self.pad_decode_batch = bool(pad_decode_batch)
        device_type = self.device.split(":")[0]
        use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device_type == "cuda")
        self.dtype = "bfloat16" if use_bf16 else "float32"
        self._autocast_device = device_type if use_bf16 else None
        if cache_bytes is None:
            cache_bytes = GIB if device_type == "cuda" else GIB // 2
        self.cache: ByteLRUCache[ImageFeatures] = ByteLRUCache(cache_bytes)
        self.encode_calls = 0
        self.encoder_batches = 0
        self.decode_calls = 0

    @contextlib.contextmanager
    def inference_context(self) -> Iterator[None]:
        """Inference mode plus this segmenter's autocast: wrap direct uses of the model."""
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
                encoded = self._encode([image for _, image in chunk])
                self.encode_calls += len(chunk)
                self.encoder_batches += 1
                for (key, _), feats in zip(chunk, encoded, strict=True):
                    features[key] = feats
                    self.cache.put(key, feats, feats.nbytes)
            return [
                self._empty_output(prompts, image.shape[:2]) if key is None else self._decode(features[key], prompts)
                for key, prompts, image in zip(keys, cleaned, images, strict=True)
            ]

    def close(self) -> None:
        """Drop the cache and free accelerator memory."""
        self.cache.clear()
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()

    # -- backend hooks ----------------------------------------------------------------------------

    def _encode(self, images: list[np.ndarray]) -> list[ImageFeatures]:
        """One encoder pass over validated ``H x W x 3`` uint8 images."""
        raise NotImplementedError

    def _decode_group(self, feats: ImageFeatures, prompts: Sequence[CleanPrompt]) -> tuple[Any, Any]:
        """One decoder call for prompts of one shape: ``(low_res_logits B x C x 256 x 256, iou B x C)`` tensors."""
        raise NotImplementedError

    # -- shared decoding --------------------------------------------------------------------------

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
                batch = [prompts[i] for i in chunk]
                if self.pad_decode_batch and self.decode_batch_size is not None:
                    # A fixed call size makes each prompt's result independent of its companions,
                    # so one reply decoded alone and inside a group give bit-identical masks.
                    batch += [batch[-1]] * (step - len(batch))
                low_res, iou = self._decode_group(feats, batch)
                low_res, iou = low_res[: len(chunk)], iou[: len(chunk)]
                self.decode_calls += 1
                masks, logits, scores = self._choose(low_res, iou, feats.orig_hw)
                out.masks[chunk], out.low_res_logits[chunk], out.scores[chunk] = masks, logits, scores
        return out

    def _choose(self, low_res: Any, iou: Any, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keep the highest-scoring candidate per prompt, upsample it to ``hw`` and threshold at 0."""
        torch = self._torch
        import torch.nn.functional as functional

        rows = torch.arange(low_res.shape[0], device=low_res.device)
        best = iou.argmax(dim=1)
        chosen = low_res[rows, best].float()
        full = functional.interpolate(chosen[:, None], hw, mode="bilinear", align_corners=False)[:, 0]
        masks = (full > 0.0).cpu().numpy()
        logits = chosen.clamp(EMPTY_LOGIT, -EMPTY_LOGIT).cpu().numpy().astype(np.float32, copy=False)
        return masks, logits, iou[rows, best].float().cpu().numpy()

    @staticmethod
    def _prompt_arrays(prompts: Sequence[CleanPrompt]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``B x K x 2`` coordinates and ``B x K`` labels: box corners (labels 2, 3), then the clicks."""
        coords, labels = [], []
        for prompt in prompts:
            if prompt.box is not None:
                coords.append(np.concatenate([prompt.box.reshape(2, 2), prompt.points]))
                labels.append(np.concatenate([[2, 3], prompt.labels]))
            else:
                coords.append(prompt.points)
                labels.append(prompt.labels)
        return np.stack(coords), np.stack(labels)

"""SAM2 through transformers' ``Sam2Model``: HF-format checkpoints behind the same protocol and cache."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from segzero_env.hub import hub_available
from segzero_env.segmenters._prompts import CleanPrompt
from segzero_env.segmenters.cached_backend import CachedPromptSegmenter, ImageFeatures, tensor_bytes
from segzero_env.segmenters.weights import WeightsNotFoundError

logger = logging.getLogger(__name__)


class HFSam2Segmenter(CachedPromptSegmenter):
    """SAM2 from an HF-format checkpoint (``Sam2Model``), with the behaviour of ``SAM2Segmenter``.

    Same cache (16 MiB per image in float32), encode batching, per-shape batched decoding, mask
    choice (``multimask``), prompt rules, empty prompts and low-res logits as
    :class:`~segzero_env.segmenters.sam2_backend.SAM2Segmenter`; select it with
    ``segmenter="segzero_env.segmenters.hf_sam2:HFSam2Segmenter"``.

    Differences: images are preprocessed by transformers' ``Sam2ImageProcessor`` (1024 x 1024,
    aspect not kept); ``Prompt.mask_input`` is ignored (this backend's prompt encoder takes one
    mask per image, not per prompt), so refinement turns use the clicks only.

    Weights: ``model_path`` is a folder written by ``Sam2Model.save_pretrained`` or a hub id
    (``facebook/sam2.1-hiera-large``, downloaded only when the hub can be reached, see
    :mod:`segzero_env.hub`);
    ``random_weights=True`` builds ``Sam2Model(Sam2Config())`` (hiera-tiny sized), seeded, with a
    warning that its masks are meaningless. Neither given: ``ValueError``.

    Args:
        model_path: HF-format folder or hub id.
        random_weights: Build the untrained default network (tests, CPU benchmarks).
        device: ``"auto"`` (CUDA, then MPS, then CPU) or a torch device string.
        multimask: ``"best"`` (Seg-Zero) or ``"single"``.
        cache_bytes: Byte bound of the embedding cache; ``None``: 1 GiB on CUDA, 512 MiB elsewhere.
        dtype: ``"auto"`` (bfloat16 autocast on CUDA), ``"bfloat16"`` or ``"float32"``.
        encode_batch_size: Images per encoder pass.
        decode_batch_size: Prompts per decoder call; ``None`` for all of an image's prompts.
        pad_decode_batch: Pad every decoder call to ``decode_batch_size`` prompts (bit-exact masks).
        seed: Initialisation seed for ``random_weights``.
    """

    name = "hf-sam2"

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        random_weights: bool = False,
        device: str = "auto",
        multimask: str = "best",
        cache_bytes: int | None = None,
        dtype: str = "auto",
        encode_batch_size: int = 1,
        decode_batch_size: int | None = 8,
        pad_decode_batch: bool = True,
        seed: int = 0,
    ) -> None:
        from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model

        self._setup(device, multimask, cache_bytes, dtype, encode_batch_size, decode_batch_size, pad_decode_batch)
        torch = self._torch
        if (model_path is None) == (not random_weights):
            raise ValueError("pass exactly one of model_path= (HF folder or hub id) and random_weights=True")
        if random_weights:
            logger.warning("HF Sam2Model built with RANDOM weights (random_weights=True): its masks are meaningless")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                network = Sam2Model(Sam2Config())
            self.weights_source = "random"
        else:
            try:
                # a folder needs no hub; a hub id gets one short probe (or HF_HUB_OFFLINE), not minutes of retries
                local_only = os.path.isdir(model_path) or not hub_available()
                network = Sam2Model.from_pretrained(str(model_path), local_files_only=local_only)
            except OSError as err:
                tried = [f"Sam2Model.from_pretrained({str(model_path)!r}): {str(err).splitlines()[0][:200]}"]
                raise WeightsNotFoundError(
                    f"no HF-format SAM2 weights at {model_path!r}. Tried:\n  - {tried[0]}\n"
                    "Pass a folder written by Sam2Model.save_pretrained, or a hub id while online "
                    "(HF_HUB_OFFLINE unset); or use segmenter='sam2' with an official .pt checkpoint.",
                    tried,
                ) from err
            self.weights_source = f"hf:{model_path}"
        self.model = network.to(self.device).eval()
        self.processor = Sam2ImageProcessor()
        self.image_size = int(self.processor.size["height"])

    def __repr__(self) -> str:
        return f"HFSam2Segmenter(weights={self.weights_source!r}, device={self.device!r}, multimask={self.multimask!r})"

    def _encode(self, images: list[np.ndarray]) -> list[ImageFeatures]:
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        batch = self.model.get_image_embeddings(pixels)
        several = len(images) > 1
        out = []
        for i, image in enumerate(images):
            tensors = tuple(level[i : i + 1] for level in batch)
            if several:  # own copies, so the cache's byte count is what stays in memory
                tensors = tuple(t.clone() for t in tensors)
            out.append(ImageFeatures(tensors, (int(image.shape[0]), int(image.shape[1])), tensor_bytes(tensors)))
        return out

    def _decode_group(self, feats: ImageFeatures, prompts: Sequence[CleanPrompt]) -> tuple[Any, Any]:
        torch = self._torch
        height, width = feats.orig_hw
        scale = np.array([self.image_size / width, self.image_size / height])
        kwargs: dict[str, Any] = {}
        if prompts[0].box is not None:
            boxes = np.stack([p.box for p in prompts]).reshape(-1, 2, 2) * scale
            kwargs["input_boxes"] = torch.as_tensor(boxes.reshape(1, -1, 4), dtype=torch.float32, device=self.device)
        if len(prompts[0].points):
            points = np.stack([p.points for p in prompts]) * scale
            labels = np.stack([p.labels for p in prompts])
            kwargs["input_points"] = torch.as_tensor(points[None], dtype=torch.float32, device=self.device)
            kwargs["input_labels"] = torch.as_tensor(labels[None], dtype=torch.int32, device=self.device)
        out = self.model(image_embeddings=list(feats.tensors), multimask_output=self.multimask == "best", **kwargs)
        return out.pred_masks[0], out.iou_scores[0]

"""A segmenter that asks a running ``segzero serve`` for its masks: any env anywhere scores through it.

``gym.make("ReasonSeg-v0", segmenter="remote", segmenter_kwargs={"url": "http://host:8000"})``
keeps parsing and rewards in the env's process and sends only the prompts. Images are named
by sample id and pixel digest; the service uses its own copy of the dataset when the digest
matches (no pixels travel), and the segmenter uploads the image (PNG) when the service does
not have it. All prompts of a ``segment_many`` call go in one request, and the service batches
requests from many envs together, so an image is encoded once however many envs ask about it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np

from segzero_env.segmenters.base import SegmenterBase, SegmentRequest
from segzero_env.segmenters.cache import image_digest
from segzero_env.service.client import ScorerClient, ServiceError
from segzero_env.service.protocol import decode_masks, prompt_to_json
from segzero_env.types import Prompt


def _png_base64(image: np.ndarray) -> str:
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return base64.b64encode(data.tobytes()).decode("ascii")


class RemoteSegmenter(SegmenterBase):
    """Segment through the scoring service's ``/segment`` endpoint.

    Prompts travel without ``mask_input`` (refinement logits stay local), so multi-turn episodes
    through a remote segmenter re-prompt from clicks and box only.

    Args:
        url: The service's base URL.
        token: Bearer token (default ``$SEGZERO_SERVICE_TOKEN``).
        timeout_s: Seconds per attempt.
        retries: Retries on 429 / 503 / dropped connections (same request id each time).
        upload: ``"auto"`` (send pixels only when the service lacks the image), ``"always"`` or ``"never"``.

    Attributes:
        uploads: Images sent as pixels so far.
    """

    name = "remote"

    def __init__(
        self, url: str, token: str | None = None, timeout_s: float = 120.0, retries: int = 6, upload: str = "auto"
    ) -> None:
        if upload not in ("auto", "always", "never"):
            raise ValueError(f"upload must be 'auto', 'always' or 'never', got {upload!r}")
        self.client = ScorerClient(url, token=token, timeout_s=timeout_s, retries=retries)
        self.upload = upload
        self.uploads = 0

    def __repr__(self) -> str:
        return f"RemoteSegmenter({self.client.url!r}, upload={self.upload!r})"

    def segment(self, image: np.ndarray, prompts: Sequence[Prompt], image_key: str | None = None) -> np.ndarray:
        """Segment one image remotely; ``B x H x W`` bool."""
        return self.segment_many([SegmentRequest(image, prompts, image_key)])[0]

    def segment_many(self, requests: Sequence[SegmentRequest]) -> list[np.ndarray]:
        """All images' prompts in one ``/segment`` request (pixels only where needed)."""
        if not requests:
            return []
        entries = []
        for request in requests:
            image = np.asarray(request.image)
            entry = {
                "image_key": request.image_key or "",
                "image_digest": image_digest(image),
                "prompts": [prompt_to_json(p) for p in request.prompts],
            }
            if self.upload == "always" or not request.image_key:
                entry["image_png"] = _png_base64(image)
            entries.append(entry)
        try:
            encoded = self.client.segment_raw(entries)
        except ServiceError as error:
            if self.upload != "auto" or error.status not in (404, 409):
                raise
            for entry, request in zip(entries, requests, strict=True):
                entry.setdefault("image_png", _png_base64(np.asarray(request.image)))
            encoded = self.client.segment_raw(entries)
        self.uploads += sum("image_png" in e for e in entries)
        masks = [decode_masks(m) for m in encoded]
        for mask, request in zip(masks, requests, strict=True):
            height, width = np.asarray(request.image).shape[:2]
            if mask.shape != (len(request.prompts), height, width):
                raise ServiceError(
                    f"the service returned masks of shape {mask.shape} for {len(request.prompts)} prompts on a "
                    f"{height} x {width} image; is it serving a different dataset? compare GET /health"
                )
        return masks

"""The segmenter protocol: one image, many prompts, masks back at the image's resolution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from segzero_env.types import Prompt


@dataclass(frozen=True)
class SegmentRequest:
    """All prompts for one image.

    Attributes:
        image: ``H x W x 3`` uint8 RGB image (original resolution).
        prompts: Prompts in the original image frame.
        image_key: Stable key for the image (sample id); backends with an embedding cache combine
            it with a hash of the pixels, so a wrong key can never return another image's features.
    """

    image: np.ndarray
    prompts: Sequence[Prompt]
    image_key: str | None = None


@dataclass(frozen=True)
class SegmentationOutput:
    """Masks plus what refinement turns need.

    Attributes:
        masks: ``B x H x W`` bool, one mask per prompt.
        low_res_logits: ``B x 256 x 256`` float32 logits of each chosen mask, to pass back as
            ``Prompt.mask_input`` on the next turn; ``None`` for backends without logits.
        scores: ``B`` predicted quality of each chosen mask; ``None`` when the backend has none.
    """

    masks: np.ndarray
    low_res_logits: np.ndarray | None = None
    scores: np.ndarray | None = None


@runtime_checkable
class Segmenter(Protocol):
    """Turns box / point prompts into binary masks.

    ``segment`` returns a ``B x H x W`` bool array, one mask per prompt, at the image's
    resolution. ``segment_many`` does the same for several images; backends that can encode
    several images in one batch override it.
    """

    name: str

    def segment(self, image: np.ndarray, prompts: Sequence[Prompt], image_key: str | None = None) -> np.ndarray:
        """Segment ``image`` once per prompt."""
        ...

    def segment_many(self, requests: Sequence[SegmentRequest]) -> list[np.ndarray]:
        """Segment several images, each with its own prompts."""
        ...


class SegmenterBase:
    """Convenience base: subclasses implement ``segment``; ``segment_many`` loops over images."""

    name = "base"

    def segment(self, image: np.ndarray, prompts: Sequence[Prompt], image_key: str | None = None) -> np.ndarray:
        """Segment ``image`` once per prompt; returns ``B x H x W`` bool."""
        raise NotImplementedError

    def segment_many(self, requests: Sequence[SegmentRequest]) -> list[np.ndarray]:
        """Segment each request in turn."""
        return [self.segment(r.image, r.prompts, r.image_key) for r in requests]

    def segment_with_logits(
        self, image: np.ndarray, prompts: Sequence[Prompt], image_key: str | None = None
    ) -> SegmentationOutput:
        """Like ``segment`` plus low-res logits where the backend has them (``None`` here)."""
        return SegmentationOutput(masks=self.segment(image, prompts, image_key))

    def segment_many_with_logits(self, requests: Sequence[SegmentRequest]) -> list[SegmentationOutput]:
        """``segment_with_logits`` for several images."""
        return [SegmentationOutput(masks=m) for m in self.segment_many(requests)]

    def close(self) -> None:
        """Release resources (GPU memory, caches)."""

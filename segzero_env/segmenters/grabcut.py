"""OpenCV GrabCut initialised from the box, with clicks as sure foreground / background."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from segzero_env.segmenters._prompts import CleanPrompt, check_image, clean_prompts, round_half_up
from segzero_env.segmenters.base import SegmenterBase
from segzero_env.segmenters.box import fill_boxes
from segzero_env.types import Prompt


class GrabCutSegmenter(SegmenterBase):
    """GrabCut on a downscaled crop around the box; the CPU default of ``ReasonSegShapes-v0``.

    For each prompt (after the shared prompt rules of ``segmenters._prompts``):

    1. Region: the box (or, with no box, the bounding box of the foreground clicks grown by
       ``point_box_pad`` of the image's longer side), grown by ``margin`` of its size on every
       side (at least 4 px) and clipped to the image. Only this crop is processed.
    2. Speed: the crop is downscaled so its longer side is at most ``max_side`` px (default 160),
       so a prompt takes a few milliseconds, whatever the image size; the result is upscaled
       bilinearly back to the crop and thresholded at 0.5.
    3. Initialisation: outside the box is sure background and inside it probable foreground,
       exactly what ``GC_INIT_WITH_RECT`` sets up; clicks are then drawn into the same mask as
       disks of ``point_radius`` px (label 1 sure foreground, label 0 sure background; background
       wins where they overlap) and GrabCut runs ``iterations`` rounds with ``GC_INIT_WITH_MASK``.
       One mask-initialised run is the rect initialisation plus the clicks, without a wasted
       first run. Since GrabCut alone only carves a background click's small disk out of a
       region it models as foreground, a background click then removes the whole connected
       foreground region it touches, unless that region also holds a foreground click.
    4. Determinism: OpenCV's RNG (used by GrabCut's k-means) is seeded with ``seed`` before every
       call, so the same image and prompt always give the same mask.

    Fallbacks, never exceptions: a prompt with no box and no foreground click gives an EMPTY
    mask. A box thinner than ``min_box_size`` px in either direction (including zero-area boxes),
    a crop with no background left (the box covers the whole image) or a GrabCut failure gives
    the BOX FILL (``BoxSegmenter``'s pixel-inclusive rule), plus the foreground clicks' pixels.

    Args:
        iterations: GrabCut rounds per prompt.
        max_side: Longest side of the crop GrabCut sees, in pixels.
        margin: Crop growth around the box, as a fraction of the box's width / height.
        min_box_size: Boxes thinner than this (in original pixels) use the box-fill fallback.
        point_radius: Radius in original pixels of the disk drawn for each click.
        point_box_pad: With clicks and no box, padding of the clicks' bounding box, as a fraction
            of the image's longer side.
        seed: Seed for OpenCV's RNG.
    """

    name = "grabcut"

    def __init__(
        self,
        iterations: int = 3,
        max_side: int = 160,
        margin: float = 0.15,
        min_box_size: int = 4,
        point_radius: float = 3.0,
        point_box_pad: float = 0.1,
        seed: int = 0,
    ) -> None:
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1; got {iterations}")
        if max_side < 16:
            raise ValueError(f"max_side must be >= 16 px so GrabCut has pixels to model; got {max_side}")
        self.iterations = int(iterations)
        self.max_side = int(max_side)
        self.margin = float(margin)
        self.min_box_size = int(min_box_size)
        self.point_radius = float(point_radius)
        self.point_box_pad = float(point_box_pad)
        self.seed = int(seed)
        self.fallbacks = 0
        """Prompts that used the box-fill fallback (degenerate box or GrabCut failure)."""

    def segment(self, image: np.ndarray, prompts: Sequence[Prompt], image_key: str | None = None) -> np.ndarray:
        """Return ``B x H x W`` bool masks, one GrabCut result per prompt."""
        image = check_image(image)
        height, width = image.shape[:2]
        out = np.zeros((len(prompts), height, width), dtype=bool)
        for i, prompt in enumerate(clean_prompts(prompts, height, width)):
            out[i] = self._segment_one(image, prompt)
        return out

    def _region_box(self, prompt: CleanPrompt, height: int, width: int) -> np.ndarray | None:
        if prompt.box is not None:
            return prompt.box
        positive = prompt.points[prompt.labels == 1]
        if len(positive) == 0:
            return None
        pad = self.point_box_pad * max(height, width)
        lo = positive.min(axis=0) - pad
        hi = positive.max(axis=0) + pad
        return np.array([max(lo[0], 0), max(lo[1], 0), min(hi[0], width - 1), min(hi[1], height - 1)])

    def _fallback(self, box: np.ndarray, prompt: CleanPrompt, height: int, width: int) -> np.ndarray:
        self.fallbacks += 1
        mask = fill_boxes(box[None], height, width)[0]
        positive = round_half_up(prompt.points[prompt.labels == 1])
        mask[positive[:, 1], positive[:, 0]] = True
        return mask

    def _segment_one(self, image: np.ndarray, prompt: CleanPrompt) -> np.ndarray:
        height, width = image.shape[:2]
        box = self._region_box(prompt, height, width)
        if box is None:
            return np.zeros((height, width), dtype=bool)
        x1, y1, x2, y2 = round_half_up(box)
        if x2 - x1 + 1 < self.min_box_size or y2 - y1 + 1 < self.min_box_size:
            return self._fallback(box, prompt, height, width)
        # Crop: the box grown by the margin, plus any foreground click outside it.
        grow_x = max(4, int(round(self.margin * (x2 - x1 + 1))))
        grow_y = max(4, int(round(self.margin * (y2 - y1 + 1))))
        cx1, cy1, cx2, cy2 = x1 - grow_x, y1 - grow_y, x2 + grow_x, y2 + grow_y
        positive = round_half_up(prompt.points[prompt.labels == 1])
        if len(positive):
            cx1, cy1 = min(cx1, positive[:, 0].min()), min(cy1, positive[:, 1].min())
            cx2, cy2 = max(cx2, positive[:, 0].max()), max(cy2, positive[:, 1].max())
        cx1, cy1, cx2, cy2 = max(cx1, 0), max(cy1, 0), min(cx2, width - 1), min(cy2, height - 1)
        crop_w, crop_h = cx2 - cx1 + 1, cy2 - cy1 + 1
        scale = min(1.0, self.max_side / max(crop_w, crop_h))
        small_w, small_h = max(1, int(round(crop_w * scale))), max(1, int(round(crop_h * scale)))
        crop = image[cy1 : cy2 + 1, cx1 : cx2 + 1]
        small = cv2.resize(crop, (small_w, small_h), interpolation=cv2.INTER_AREA) if scale < 1 else crop.copy()
        sx, sy = small_w / crop_w, small_h / crop_h

        gc_mask = np.full((small_h, small_w), cv2.GC_BGD, dtype=np.uint8)
        bx1, by1 = int((x1 - cx1) * sx), int((y1 - cy1) * sy)
        bx2, by2 = int(np.ceil((x2 - cx1 + 1) * sx)) - 1, int(np.ceil((y2 - cy1 + 1) * sy)) - 1
        gc_mask[by1 : by2 + 1, bx1 : bx2 + 1] = cv2.GC_PR_FGD
        radius = max(1, int(round(self.point_radius * min(sx, sy))))
        centres = {
            label: [
                (int((px - cx1 + 0.5) * sx), int((py - cy1 + 0.5) * sy))
                for px, py in prompt.points[prompt.labels == label]
            ]
            for label in (1, 0)
        }
        for label, value in ((1, cv2.GC_FGD), (0, cv2.GC_BGD)):
            for centre in centres[label]:
                cv2.circle(gc_mask, centre, radius, int(value), thickness=-1)
        is_bg = (gc_mask == cv2.GC_BGD) | (gc_mask == cv2.GC_PR_BGD)
        if is_bg.all() or not is_bg.any():
            return self._fallback(box, prompt, height, width)
        cv2.setRNGSeed(self.seed)
        try:
            bgd_model = np.zeros((1, 65), np.float64)
            fgd_model = np.zeros((1, 65), np.float64)
            cv2.grabCut(small, gc_mask, None, bgd_model, fgd_model, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            return self._fallback(box, prompt, height, width)
        fg = (gc_mask == cv2.GC_FGD) | (gc_mask == cv2.GC_PR_FGD)
        if centres[0]:
            fg = _drop_clicked_components(fg, centres[0], centres[1], radius)
        fg = fg.astype(np.float32)
        if scale < 1:
            fg = cv2.resize(fg, (crop_w, crop_h), interpolation=cv2.INTER_LINEAR)
        mask = np.zeros((height, width), dtype=bool)
        mask[cy1 : cy2 + 1, cx1 : cx2 + 1] = fg >= 0.5
        return mask


def _drop_clicked_components(
    fg: np.ndarray, negative: list[tuple[int, int]], positive: list[tuple[int, int]], radius: int
) -> np.ndarray:
    """Remove each foreground component that a background click touches, unless it holds a foreground click.

    GrabCut alone only carves the click's small disk out of a region whose colour it already
    models as foreground; a background click is meant to reject the region it lands on.
    """
    disks = np.zeros(fg.shape, dtype=np.uint8)
    for centre in negative:
        cv2.circle(disks, centre, radius + 1, 1, thickness=-1)
    _, labels = cv2.connectedComponents((fg | (disks > 0)).astype(np.uint8), connectivity=8)
    touched = set(np.unique(labels[disks > 0]).tolist()) - {0}
    height, width = fg.shape
    kept = {int(labels[min(max(y, 0), height - 1), min(max(x, 0), width - 1)]) for x, y in positive}
    drop = sorted(touched - kept)
    if not drop:
        return fg
    return fg & ~np.isin(labels, drop)

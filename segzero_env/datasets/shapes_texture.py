"""Pixels of the synthetic shapes set: backgrounds, object surfaces and noise.

Everything here draws from the caller's ``numpy.random.Generator`` so an image is a pure function of
the sample's seed. The noise comes from one fixed bank (built once from a constant seed) cropped at a
random offset, because drawing a fresh full-size normal field per sample would dominate the cost.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from segzero_env.datasets.shapes_vocab import COLOURS

BACKGROUNDS: tuple[tuple[int, int, int], ...] = (
    (200, 200, 196),
    (176, 182, 190),
    (214, 206, 188),
    (150, 150, 150),
    (96, 100, 110),
    (70, 74, 80),
    (186, 176, 160),
)
"""Neutral base tones: objects are saturated colours, the background is not."""

MIN_COLOUR_DISTANCE = 100.0
"""An object colour closer than this (RGB Euclidean) to the background's mean tone is not used."""

_NOISE_MAX_H, _NOISE_MAX_W, _NOISE_PAD = 480, 640, 64
_NOISE_SCALE_BITS = 5  # bank values are N(0, 2**5); multiplying by sigma and shifting gives N(0, sigma)


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    rng = np.random.default_rng(20250311)
    bank = rng.normal(0.0, float(1 << _NOISE_SCALE_BITS), (_NOISE_MAX_H + _NOISE_PAD, _NOISE_MAX_W + _NOISE_PAD, 3))
    return np.clip(bank, -1000, 1000).astype(np.int16)


def solid(height: int, width: int, rgb: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    """Return a ``height x width x 3`` uint8 image of one colour (a row copied down: far faster than broadcasting)."""
    row = np.tile(np.asarray(rgb, dtype=np.uint8), width)
    return np.broadcast_to(row, (height, width * 3)).reshape(height, width, 3).copy()


def usable_colours(background_tone: np.ndarray) -> list[str]:
    """Object colour names far enough from ``background_tone`` (an RGB triple) to stay visible."""
    tone = np.asarray(background_tone, dtype=np.float64)
    return [
        name for name, rgb in COLOURS.items() if float(np.linalg.norm(np.asarray(rgb) - tone)) >= MIN_COLOUR_DISTANCE
    ]


def make_background(rng: np.random.Generator, kind: str, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw a background image.

    Args:
        rng: The sample's generator.
        kind: ``"plain"`` (one tone), ``"gradient"`` (bilinear blend of four neutral corners) or
            ``"textured"`` (a cloudy two-octave colour field, 30% neutral).
        height: Image height.
        width: Image width.

    Returns:
        ``(image, tone)``: the ``H x W x 3`` uint8 image and its mean RGB tone (float array).
    """
    base = np.asarray(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], dtype=np.float32)
    if kind == "plain":
        return solid(height, width, base.astype(np.uint8)), base.astype(np.float64)
    if kind == "gradient":
        corners = np.clip(base + rng.uniform(-40, 40, size=(2, 2, 1)) + rng.uniform(-8, 8, size=(2, 2, 3)), 0, 255)
        image = cv2.resize(corners.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        image = np.clip(image, 0, 255).astype(np.uint8)
        return image, corners.reshape(-1, 3).mean(axis=0).astype(np.float64)
    if kind == "textured":
        # Built at a quarter of the resolution and upsampled once: the field is smooth anyway.
        small = (max(width // 4, 8), max(height // 4, 8))
        coarse = rng.uniform(0, 255, size=(int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3)).astype(np.float32)
        fine = rng.uniform(-60, 60, size=(int(rng.integers(16, 40)), int(rng.integers(16, 40)), 1)).astype(np.float32)
        field = cv2.resize(coarse, small, interpolation=cv2.INTER_CUBIC)
        field += cv2.resize(fine, small, interpolation=cv2.INTER_CUBIC)[..., None]
        field = np.clip(0.7 * field + 0.3 * base, 0, 255).astype(np.uint8)
        image = cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)
        return image, 0.7 * coarse.reshape(-1, 3).mean(axis=0).astype(np.float64) + 0.3 * base
    raise ValueError(f"unknown background kind {kind!r}; use 'plain', 'gradient' or 'textured'")


def draw_clutter(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Draw ``count`` thin lines and arcs in object colours onto ``image`` (in place), as distractors."""
    height, width = image.shape[:2]
    names = list(COLOURS)
    for _ in range(count):
        colour = tuple(int(c) for c in COLOURS[names[int(rng.integers(len(names)))]])
        thickness = int(rng.integers(2, 6))
        if rng.random() < 0.5:
            p1 = (int(rng.integers(width)), int(rng.integers(height)))
            p2 = (int(rng.integers(width)), int(rng.integers(height)))
            cv2.line(image, p1, p2, colour, thickness, lineType=cv2.LINE_8)
        else:
            centre = (int(rng.integers(width)), int(rng.integers(height)))
            axes = (int(rng.integers(10, max(11, width // 3))), int(rng.integers(10, max(11, height // 3))))
            start = float(rng.uniform(0, 360))
            cv2.ellipse(image, centre, axes, 0.0, start, start + float(rng.uniform(40, 200)), colour, thickness)


def object_surface(
    rng: np.random.Generator, colour: tuple[int, int, int], pattern: str, height: int, width: int
) -> np.ndarray:
    """Paint the ``height x width x 3`` uint8 surface of one object over its box.

    The hue stays the named colour; a pattern only changes brightness (so "the red square" stays red).

    Args:
        rng: The sample's generator.
        colour: Base RGB colour.
        pattern: ``flat``, ``shade`` (linear light falloff), ``stripes``, ``speckle`` or ``checker``.
        height: Box height.
        width: Box width.
    """
    rgb = np.asarray(colour, dtype=np.float32)
    if pattern == "flat":
        return solid(height, width, rgb.astype(np.uint8))
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    angle = float(rng.uniform(0, np.pi))
    along = xs * np.cos(angle) + ys * np.sin(angle)
    if pattern == "shade":
        span = max(float(along.max() - along.min()), 1.0)
        gain = 1.12 - 0.3 * (along - along.min()) / span
    elif pattern == "stripes":
        period = float(rng.uniform(6, 14))
        gain = 1.0 + 0.18 * np.sign(np.sin(2 * np.pi * along / period))
    elif pattern == "speckle":
        gain = 1.0 + rng.uniform(-0.22, 0.22, size=(height, width)).astype(np.float32)
    elif pattern == "checker":
        cell = int(rng.integers(5, 11))
        gain = 1.0 + 0.16 * (((ys // cell) + (xs // cell)) % 2 * 2 - 1)
    else:
        raise ValueError(f"unknown pattern {pattern!r}; use flat, shade, stripes, speckle or checker")
    # Dark colours barely change under a gain, so an additive term keeps their pattern visible.
    surface = rgb[None, None, :] * gain[..., None] + 60.0 * (gain[..., None] - 1.0)
    return np.clip(surface, 0, 255).astype(np.uint8)


def add_noise(rng: np.random.Generator, image: np.ndarray, sigma: int) -> np.ndarray:
    """Return ``image`` plus Gaussian-like pixel noise of standard deviation ``sigma`` (uint8, clipped)."""
    if sigma <= 0:
        return image
    height, width = image.shape[:2]
    bank = _noise_bank()
    if height > _NOISE_MAX_H or width > _NOISE_MAX_W:
        # Larger images than the bank: tile it (only reachable through custom image sizes).
        reps = (height // _NOISE_MAX_H + 1, width // _NOISE_MAX_W + 1, 1)
        bank = np.tile(bank, reps)
    y0 = int(rng.integers(bank.shape[0] - height + 1))
    x0 = int(rng.integers(bank.shape[1] - width + 1))
    noise = (bank[y0 : y0 + height, x0 : x0 + width] * np.int16(sigma)) >> _NOISE_SCALE_BITS
    out = image.astype(np.int16)
    out += noise
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)

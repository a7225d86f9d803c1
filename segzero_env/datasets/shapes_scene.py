"""Scenes of the synthetic shapes set: object geometry, placement and rasterisation.

One rasterisation gives both the picture and the ground truth: every object is filled (no
anti-aliasing) into a label map at the same time as its pixels are painted, so the target mask is
exactly the set of pixels showing the target. Later objects are drawn over earlier ones; an occluded
object's mask is its visible part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from segzero_env.datasets.shapes_levels import LevelConfig
from segzero_env.datasets.shapes_texture import add_noise, draw_clutter, make_background, object_surface, usable_colours
from segzero_env.datasets.shapes_vocab import COLOURS

_SUBPIXEL_BITS = 3  # fillPoly's fixed-point shift: vertices keep 1/8 pixel precision
_GAP = 3.0  # pixels kept free between circumscribed circles of non-overlapping objects
_PLACEMENT_TRIES = 40
_LAYOUT_TRIES = 10
_ROUND_POINTS = 64


@dataclass
class Scene:
    """A rendered scene.

    Attributes:
        image: ``H x W x 3`` uint8 RGB picture.
        labels: ``H x W`` uint8 label map: 0 background, ``i + 1`` where object ``i`` is visible.
        objects: One JSON-ready dict per object, in drawing order (see :func:`render_scene`).
    """

    image: np.ndarray
    labels: np.ndarray
    objects: list[dict[str, Any]]

    def mask_of(self, index: int) -> np.ndarray:
        """``H x W`` uint8 mask (0/1) of the visible pixels of object ``index``."""
        return (self.labels == index + 1).astype(np.uint8)


def _regular(n: int, radius: float, offset: float) -> np.ndarray:
    angles = offset + 2 * np.pi * np.arange(n) / n
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def shape_outline(shape: str, area: float, aspect: float) -> np.ndarray:
    """Vertices (``N x 2``, centred on the origin, unrotated) of ``shape`` with pixel area ``area``.

    Args:
        shape: A name from :data:`~segzero_env.datasets.shapes_vocab.SHAPES`.
        area: Wanted area in pixels.
        aspect: Long-to-short side ratio, used by ``rectangle`` and ``ellipse`` only.
    """
    up = -np.pi / 2  # image y grows downwards: -90 degrees puts a vertex at the top
    if shape == "circle":
        return _regular(_ROUND_POINTS, math.sqrt(area / math.pi), 0.0)
    if shape == "ellipse":
        minor = math.sqrt(area / (math.pi * aspect))
        unit = _regular(_ROUND_POINTS, 1.0, 0.0)
        return unit * np.array([aspect * minor, minor])
    if shape == "square":
        half = math.sqrt(area) / 2
        return np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    if shape == "rectangle":
        long_side = math.sqrt(area * aspect)
        half_w, half_h = long_side / 2, long_side / aspect / 2
        return np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    if shape == "star":
        inner = 0.45
        outer = math.sqrt(area / (5 * inner * math.sin(math.pi / 5)))
        points = _regular(10, outer, up)
        points[1::2] *= inner
        return points
    sides = {"triangle": 3, "pentagon": 5, "hexagon": 6, "octagon": 8}.get(shape)
    if sides is None:
        raise ValueError(f"unknown shape {shape!r}")
    radius = math.sqrt(2 * area / (sides * math.sin(2 * math.pi / sides)))
    # A stop sign has a flat top: turn the octagon by half a sector.
    return _regular(sides, radius, up + (math.pi / sides if shape == "octagon" else 0.0))


def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    theta = math.radians(degrees)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return points @ rot.T


def _pick(rng: np.random.Generator, options: list[str], count: int, pool: tuple[int, int] | None) -> list[str]:
    """``count`` names from ``options``: all distinct when ``pool`` is None, else drawn from a small pool."""
    if pool is None:
        chosen = rng.choice(len(options), size=min(count, len(options)), replace=False)
        picks = [options[int(i)] for i in chosen]
        while len(picks) < count:  # more objects than names: repeat some
            picks.append(options[int(rng.integers(len(options)))])
        return picks
    size = int(rng.integers(pool[0], pool[1] + 1))
    pool_names = [options[int(i)] for i in rng.choice(len(options), size=min(size, len(options)), replace=False)]
    return [pool_names[int(rng.integers(len(pool_names)))] for _ in range(count)]


def _layout(rng: np.random.Generator, cfg: LevelConfig, height: int, width: int, colours: list[str]) -> list[dict]:
    """Choose attributes and non-colliding positions; objects that find no room are dropped."""
    count = int(rng.integers(cfg.n_objects[0], cfg.n_objects[1] + 1))
    shapes = _pick(rng, list(cfg.shapes), count, cfg.shape_pool)
    colour_names = _pick(rng, colours, count, cfg.colour_pool)
    size_names = list(cfg.size_weights)
    weights = np.asarray([cfg.size_weights[s] for s in size_names], dtype=np.float64)
    sizes = [size_names[int(i)] for i in rng.choice(len(size_names), size=count, p=weights / weights.sum())]
    # Large objects first: they are the hardest to fit, and small ones drawn later stay visible on top.
    order = sorted(range(count), key=lambda i: -cfg.size_area[sizes[i]][0])
    side2 = float(min(height, width)) ** 2
    placed: list[dict] = []
    for i in order:
        shape, size = shapes[i], sizes[i]
        lo, hi = cfg.size_area[size]
        aspect = float(rng.uniform(1.6, 2.2))
        outline = shape_outline(shape, float(rng.uniform(lo, hi)) * side2, aspect)
        limit = min(cfg.max_rotation, 20.0) if shape in ("square", "rectangle") else cfg.max_rotation
        rotation = float(rng.uniform(-limit, limit)) if limit > 0 else 0.0
        if shape in ("rectangle", "ellipse") and rng.random() < 0.5:
            rotation += 90.0  # upright as often as lying
        outline = _rotate(outline, rotation)
        radius = float(np.sqrt((outline**2).sum(axis=1)).max())
        may_overlap = rng.random() < cfg.occlusion_prob
        for _ in range(_PLACEMENT_TRIES):
            if width - 2 * radius - 6 <= 0 or height - 2 * radius - 6 <= 0:
                break
            cx = float(rng.uniform(radius + 2, width - radius - 3))
            cy = float(rng.uniform(radius + 2, height - radius - 3))
            touching = [
                (math.hypot(cx - p["cx"], cy - p["cy"]), radius + p["radius"], p["colour"])
                for p in placed
                if math.hypot(cx - p["cx"], cy - p["cy"]) < radius + p["radius"] + _GAP
            ]
            # An overlap is allowed with one object of another colour: same-coloured objects would merge
            # into one blob whose boundary nobody could see.
            ok = not touching or (
                may_overlap
                and len(touching) == 1
                and touching[0][0] >= 0.6 * touching[0][1]
                and touching[0][2] != colour_names[i]
            )
            if ok:
                placed.append(
                    {
                        "shape": shape,
                        "colour": colour_names[i],
                        "size": size,
                        "cx": cx,
                        "cy": cy,
                        "radius": radius,
                        "rotation": rotation,
                        "outline": outline,
                        "pattern": cfg.patterns[int(rng.integers(len(cfg.patterns)))],
                    }
                )
                break
    return placed


def render_scene(rng: np.random.Generator, cfg: LevelConfig, height: int, width: int) -> Scene | None:
    """Draw one scene of level ``cfg``; ``None`` when this draw breaks a level rule (the caller redraws).

    Each object dict holds ``shape``, ``colour``, ``size``, ``centre`` ``[x, y]``, ``bbox`` (inclusive
    pixel box of the visible part), ``extent`` (inclusive box of the whole shape), ``area`` (pixels of the
    whole shape), ``visible_area``, ``rotation`` (degrees) and ``pattern``.
    """
    background, tone = make_background(rng, cfg.background, height, width)
    colours = usable_colours(tone)
    for _ in range(_LAYOUT_TRIES):  # layouts are cheap to redraw, the background is not
        layout = _layout(rng, cfg, height, width, colours)
        if len(layout) >= cfg.n_objects[0]:
            break
    else:
        return None
    # Translucent objects blend with the background as it was before clutter: lines stay behind them.
    bare = background.copy() if cfg.opacity[0] < 1.0 else background
    draw_clutter(rng, background, int(rng.integers(cfg.clutter[0], cfg.clutter[1] + 1)))
    image = background
    labels = np.zeros((height, width), dtype=np.uint8)
    boxes = []
    for index, obj in enumerate(layout):
        points = obj["outline"] + np.array([obj["cx"], obj["cy"]])
        x1 = max(int(math.floor(points[:, 0].min())), 0)
        y1 = max(int(math.floor(points[:, 1].min())), 0)
        x2 = min(int(math.ceil(points[:, 0].max())) + 1, width)
        y2 = min(int(math.ceil(points[:, 1].max())) + 1, height)
        local = np.round((points - np.array([x1, y1])) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        fill = np.zeros((y2 - y1, x2 - x1), dtype=np.uint8)
        cv2.fillPoly(fill, [local], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        inside = fill.astype(bool)
        surface = object_surface(rng, COLOURS[obj["colour"]], obj["pattern"], y2 - y1, x2 - x1)
        opacity = float(rng.uniform(*cfg.opacity)) if cfg.opacity[0] < 1.0 else 1.0
        if opacity < 1.0:
            # Never blend with objects below: a hidden part stays hidden.
            behind = bare[y1:y2, x1:x2].astype(np.float32)
            surface = (opacity * surface + (1.0 - opacity) * behind).astype(np.uint8)
        np.copyto(image[y1:y2, x1:x2], surface, where=inside[..., None])
        np.copyto(labels[y1:y2, x1:x2], np.uint8(index + 1), where=inside)
        obj["area"] = int(inside.sum())
        boxes.append((x1, y1, x2, y2, inside))
    objects = []
    for index, (obj, (x1, y1, x2, y2, inside)) in enumerate(zip(layout, boxes, strict=True)):
        visible = labels[y1:y2, x1:x2] == index + 1
        visible_area = int(visible.sum())
        if obj["area"] == 0 or visible_area < cfg.min_visible * obj["area"]:
            return None
        objects.append(
            {
                "shape": obj["shape"],
                "colour": obj["colour"],
                "size": obj["size"],
                "centre": [round(obj["cx"], 2), round(obj["cy"], 2)],
                "bbox": _inclusive_box(visible, x1, y1),
                "extent": _inclusive_box(inside, x1, y1),
                "area": obj["area"],
                "visible_area": visible_area,
                "rotation": round(obj["rotation"], 2),
                "pattern": obj["pattern"],
            }
        )
    if cfg.blur:
        image = cv2.GaussianBlur(image, (cfg.blur, cfg.blur), 0)
    image = add_noise(rng, image, cfg.noise_sigma)
    return Scene(image=image, labels=labels, objects=objects)


def _inclusive_box(region: np.ndarray, x0: int, y0: int) -> list[int]:
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    return [x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]), y0 + int(rows[-1])]

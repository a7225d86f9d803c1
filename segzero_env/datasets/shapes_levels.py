"""Difficulty levels of the synthetic shapes set: what a scene holds and which queries it asks.

The four levels are described for users in :mod:`segzero_env.datasets.shapes`; this module holds the
numbers. Object sizes are pixel areas as a fraction of ``min(H, W) ** 2``; the three size classes are at
least a factor 1.5 apart so that "the large circle" and "the largest shape" never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from segzero_env.datasets.shapes_vocab import SHAPES

BASIC_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "rectangle", "star", "hexagon")
"""Shapes that stay easy to tell apart even when drawn small or seen by a small CNN."""


@dataclass(frozen=True)
class LevelConfig:
    """How scenes and queries of one difficulty level are generated.

    Attributes:
        level: Level number (0-4).
        n_objects: Inclusive ``(min, max)`` number of objects.
        size_weights: Probability of each size class.
        size_area: Area range of each size class, as a fraction of ``min(H, W) ** 2``.
        shapes: Shapes that may appear.
        max_rotation: Largest rotation in degrees (squares and rectangles use at most 20).
        colour_pool: ``(min, max)`` distinct colours drawn for the scene, objects picking among them
            (so attributes repeat); ``None`` gives every object its own colour.
        shape_pool: Same for shapes; ``None`` draws each object's shape from ``shapes`` freely.
        background: ``"plain"``, ``"gradient"`` or ``"textured"``.
        noise_sigma: Standard deviation of the pixel noise added to the whole image (0 = none).
        blur: Side of the Gaussian kernel that softens the finished image (0 = none; edges become less crisp).
        clutter: ``(min, max)`` thin background lines in object colours (part of the background).
        patterns: Surface patterns an object may get (``flat``, ``shade``, ``stripes``, ``speckle``,
            ``checker``).
        opacity: ``(min, max)`` opacity of object surfaces; below 1 the background shows through, so
            colour alone no longer separates an object from its surroundings.
        occlusion_prob: Chance that an object may overlap one earlier object (mask = visible part).
        min_visible: Smallest visible fraction of any object's area.
        query_weights: Relative frequency of each query builder.
        long_prob: Chance that a query is a long sentence rather than a short phrase.
    """

    level: int
    n_objects: tuple[int, int]
    size_weights: dict[str, float]
    size_area: dict[str, tuple[float, float]]
    shapes: tuple[str, ...]
    max_rotation: float
    colour_pool: tuple[int, int] | None
    shape_pool: tuple[int, int] | None
    background: str
    noise_sigma: int
    blur: int
    clutter: tuple[int, int]
    patterns: tuple[str, ...]
    occlusion_prob: float
    opacity: tuple[float, float]
    min_visible: float
    query_weights: dict[str, float] = field(default_factory=dict)
    long_prob: float = 0.5


_EASY_AREA = {"large": (0.10, 0.16)}
_AREA = {"small": (0.016, 0.022), "medium": (0.035, 0.05), "large": (0.075, 0.11)}

_LEVEL_0 = LevelConfig(
    level=0,
    n_objects=(1, 1),
    size_weights={"large": 1.0},
    size_area=_EASY_AREA,
    shapes=BASIC_SHAPES,
    max_rotation=0.0,
    colour_pool=None,
    shape_pool=None,
    background="plain",
    noise_sigma=0,
    blur=0,
    clutter=(0, 0),
    patterns=("flat",),
    occlusion_prob=0.0,
    opacity=(1.0, 1.0),
    min_visible=1.0,
    query_weights={"attribute": 1.0},
)

LEVELS: dict[int, LevelConfig] = {
    0: _LEVEL_0,
    # level 1 is level 0 with a second object: the query must tell the two apart
    1: replace(_LEVEL_0, level=1, n_objects=(2, 2)),
    2: LevelConfig(
        level=2,
        n_objects=(3, 5),
        size_weights={"small": 0.3, "medium": 0.4, "large": 0.3},
        size_area=_AREA,
        shapes=SHAPES,
        max_rotation=15.0,
        colour_pool=(2, 5),
        shape_pool=(3, 6),
        background="gradient",
        noise_sigma=4,
        blur=0,
        clutter=(0, 0),
        patterns=("flat", "shade"),
        occlusion_prob=0.0,
        opacity=(1.0, 1.0),
        min_visible=1.0,
        query_weights={"attribute": 0.15, "extreme": 0.3, "relation": 0.25, "distance": 0.1, "functional": 0.2},
    ),
    3: LevelConfig(
        level=3,
        n_objects=(6, 9),
        size_weights={"small": 0.4, "medium": 0.4, "large": 0.2},
        size_area=_AREA,
        shapes=SHAPES,
        max_rotation=30.0,
        colour_pool=(2, 4),
        shape_pool=(2, 4),
        background="textured",
        noise_sigma=12,
        blur=5,
        clutter=(6, 12),
        patterns=("flat", "shade", "stripes", "speckle", "checker"),
        occlusion_prob=0.3,
        opacity=(0.8, 0.92),
        min_visible=0.6,
        query_weights={
            "attribute": 0.05,
            "extreme": 0.1,
            "ordinal": 0.2,
            "relation": 0.15,
            "distance": 0.1,
            "negation": 0.15,
            "functional": 0.15,
            "count": 0.1,
        },
    ),
}
"""The level table; ``load_shapes(level=...)`` picks one entry."""

# level 4 is level 2 with repeated attributes and queries naming several objects ("every red shape")
# or none ("the blue star" when there is none)
LEVELS[4] = replace(
    LEVELS[2],
    level=4,
    colour_pool=(2, 3),
    shape_pool=(2, 3),
    query_weights={"attribute": 0.4, "every": 0.3, "absent": 0.3},
    long_prob=0.3,
)

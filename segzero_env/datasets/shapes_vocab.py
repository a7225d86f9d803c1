"""Words and facts of the synthetic shapes world: colours, shapes, sizes and what they are good for.

Everything a query may mention lives here, so that the scene generator, the query resolver and the
text renderer agree on one vocabulary. All names are lower-case ASCII.

Corner counts (used by "the shape with the most corners"): circle and ellipse 0, triangle 3,
square and rectangle 4, pentagon 5, hexagon 6, octagon 8. A star has 5 points and 10 vertices, so
a reader may count it either way: its corner count is the interval ``[5, 10]`` and the resolver only
accepts a corner comparison that holds for both readings.
"""

from __future__ import annotations

from dataclasses import dataclass

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 30),
    "green": (40, 160, 60),
    "cyan": (30, 195, 210),
    "blue": (35, 75, 215),
    "purple": (130, 55, 185),
    "pink": (240, 115, 185),
    "brown": (125, 80, 35),
    "white": (248, 248, 248),
    "black": (20, 20, 20),
}
"""Named object colours (RGB). Chosen to be far apart so a name never fits two of them."""

SHAPES: tuple[str, ...] = (
    "circle",
    "ellipse",
    "triangle",
    "square",
    "rectangle",
    "pentagon",
    "hexagon",
    "octagon",
    "star",
)

CORNERS: dict[str, tuple[int, int]] = {
    "circle": (0, 0),
    "ellipse": (0, 0),
    "triangle": (3, 3),
    "square": (4, 4),
    "rectangle": (4, 4),
    "pentagon": (5, 5),
    "hexagon": (6, 6),
    "octagon": (8, 8),
    "star": (5, 10),
}
"""Corner count of each shape as a ``(fewest, most)`` reading; only the star is uncertain."""

SIZES: tuple[str, ...] = ("small", "medium", "large")

SIZE_WORDS: dict[str, str] = {"small": "small", "medium": "medium-sized", "large": "large"}

ORDINAL_WORDS: dict[int, str] = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth"}

COUNT_WORDS: dict[int, str] = {
    1: "only once",
    2: "exactly twice",
    3: "exactly three times",
    4: "exactly four times",
    5: "exactly five times",
    6: "exactly six times",
}


@dataclass(frozen=True)
class ShapeFunction:
    """A description of a shape by what it looks like or could do, instead of its name.

    Attributes:
        name: Stable key stored in the structured query.
        shapes: Every shape the description fits (the resolver filters by this set).
        short: Clause for short queries ("that could roll").
        long: Clause for long queries ("that would roll away if you gave it a push").
    """

    name: str
    shapes: tuple[str, ...]
    short: str
    long: str


SHAPE_FUNCTIONS: dict[str, ShapeFunction] = {
    f.name: f
    for f in (
        ShapeFunction("roll", ("circle", "ellipse"), "that could roll", "that would roll away if you gave it a push"),
        ShapeFunction("no_corners", ("circle", "ellipse"), "with no corners", "whose outline has no corners at all"),
        ShapeFunction("coin", ("circle",), "that looks like a coin", "that has the outline of a coin or a wheel"),
        ShapeFunction("egg", ("ellipse",), "that looks like an egg", "that is oval like an egg seen from the side"),
        ShapeFunction("stop_sign", ("octagon",), "that looks like a stop sign", "that has the outline of a stop sign"),
        ShapeFunction(
            "yield_sign", ("triangle",), "that looks like a yield sign", "that looks like a yield sign on the road"
        ),
        ShapeFunction(
            "honeycomb",
            ("hexagon",),
            "that looks like a honeycomb cell",
            "that has the outline of a cell in a honeycomb",
        ),
        ShapeFunction(
            "starfish", ("star",), "that looks like a starfish", "that you would draw for a star in the night sky"
        ),
        ShapeFunction("tile", ("square",), "with four equal sides", "with four equal sides and four right angles"),
        ShapeFunction("brick", ("rectangle",), "that looks like a brick", "that has the outline of a brick or a door"),
        ShapeFunction(
            "home_plate", ("pentagon",), "with five sides", "with exactly five straight sides, like home plate"
        ),
        ShapeFunction("three_sides", ("triangle",), "with three sides", "that is made of exactly three straight sides"),
        ShapeFunction("four_corners", ("square", "rectangle"), "with four corners", "that has exactly four corners"),
        ShapeFunction(
            "many_corners",
            ("pentagon", "hexagon", "octagon", "star"),
            "with more than four corners",
            "whose outline has more than four corners",
        ),
    )
}
"""Functional and property descriptions of shapes, keyed by name."""

COLOUR_PHRASES: dict[str, str] = {
    "red": "the colour of a fire truck",
    "orange": "the colour of a pumpkin",
    "yellow": "the colour of a ripe banana",
    "green": "the colour of fresh grass",
    "cyan": "turquoise like tropical sea water",
    "blue": "the deep blue of a sapphire",
    "purple": "the colour of an amethyst",
    "pink": "the colour of a flamingo",
    "brown": "the colour of chocolate",
    "white": "the colour of fresh snow",
    "black": "the colour of coal",
}
"""World-knowledge descriptions of each colour, used in long queries."""

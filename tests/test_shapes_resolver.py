import numpy as np
import pytest

from segzero_env.datasets.shapes_levels import LEVELS
from segzero_env.datasets.shapes_queries import BUILDERS, generate_query, query_targets
from segzero_env.datasets.shapes_resolver import is_unique, resolve
from segzero_env.datasets.shapes_text import SINGLE_OBJECT_FRAMES, render_query
from segzero_env.datasets.shapes_vocab import SHAPE_FUNCTIONS, SHAPES

W, H = 400, 300


def obj(colour, shape, x, y, r=20, size="medium", area=None):
    return {
        "colour": colour,
        "shape": shape,
        "size": size,
        "centre": [x, y],
        "extent": [x - r, y - r, x + r, y + r],
        "area": area if area is not None else 4 * r * r,
    }


def both(query, objects):
    return resolve(query, objects, W, H, "strict"), resolve(query, objects, W, H, "lenient")


def test_attribute_filters_and_negation():
    scene = [obj("red", "circle", 50, 50), obj("red", "square", 150, 50), obj("blue", "circle", 250, 50)]
    assert resolve({"op": "filter", "filter": {"colour": "red"}}, scene, W, H) == [0, 1]
    assert is_unique({"op": "filter", "filter": {"colour": "red", "shape": "circle"}}, scene, W, H, 0)
    assert is_unique({"op": "filter", "filter": {"shape": "circle", "not_colour": "red"}}, scene, W, H, 2)
    assert resolve({"op": "filter", "filter": {"not_shape": "circle"}}, scene, W, H) == [1]
    assert not is_unique({"op": "filter", "filter": {"not_colour": "blue"}}, scene, W, H, 0)


def test_functions_and_counts():
    scene = [obj("red", "ellipse", 50, 50), obj("red", "octagon", 150, 50), obj("green", "circle", 250, 50)]
    assert resolve({"op": "filter", "filter": {"function": "roll"}}, scene, W, H) == [0, 2]
    assert is_unique({"op": "filter", "filter": {"function": "stop_sign"}}, scene, W, H, 1)
    assert is_unique({"op": "filter", "filter": {"function": "roll", "colour": "green"}}, scene, W, H, 2)
    assert is_unique({"op": "filter", "filter": {"colour_count": 1}}, scene, W, H, 2)
    assert resolve({"op": "filter", "filter": {"colour_count": 2}}, scene, W, H) == [0, 1]
    assert is_unique({"op": "filter", "filter": {"colour_count": 2, "shape": "ellipse"}}, scene, W, H, 0)


def test_position_ranks_need_a_clear_margin():
    margin = 0.05 * W
    clear = [obj("red", "circle", 100, 100), obj("red", "circle", 100 + margin + 1, 200)]
    close = [obj("red", "circle", 100, 100), obj("red", "circle", 100 + margin - 1, 200)]
    leftmost = {"op": "rank", "filter": {}, "key": "x", "order": "asc", "k": 1}
    assert both(leftmost, clear) == ([0], [0])
    strict, lenient = both(leftmost, close)
    assert strict == [] and lenient == [0, 1]
    assert not is_unique(leftmost, close, W, H, 0)
    # "topmost" is fine in the close scene: the y gap is large.
    assert is_unique({"op": "rank", "filter": {}, "key": "y", "order": "asc", "k": 1}, close, W, H, 0)


def test_ordinals_count_only_the_filtered_class():
    scene = [
        obj("red", "circle", 40, 50),
        obj("blue", "square", 90, 50),
        obj("red", "circle", 140, 50),
        obj("red", "circle", 240, 50),
    ]
    second = {"op": "rank", "filter": {"shape": "circle"}, "key": "x", "order": "asc", "k": 2}
    assert is_unique(second, scene, W, H, 2)
    from_right = {"op": "rank", "filter": {"shape": "circle"}, "key": "x", "order": "desc", "k": 3}
    assert is_unique(from_right, scene, W, H, 0)
    assert resolve({**second, "k": 4}, scene, W, H) == []


def test_area_ranks_use_a_ratio_margin():
    scene = [obj("red", "circle", 50, 50, area=1000), obj("blue", "circle", 150, 50, area=1250)]
    largest = {"op": "rank", "filter": {}, "key": "area", "order": "desc", "k": 1}
    assert not is_unique(largest, scene, W, H, 1)
    scene[1]["area"] = 1400
    assert is_unique(largest, scene, W, H, 1)


def test_star_corners_are_uncertain():
    most = {"op": "rank", "filter": {}, "key": "corners", "order": "desc", "k": 1}
    with_hexagon = [obj("red", "star", 50, 50), obj("blue", "hexagon", 150, 50), obj("blue", "square", 250, 50)]
    assert not is_unique(most, with_hexagon, W, H, 0)
    assert not is_unique(most, with_hexagon, W, H, 1)
    with_square = [obj("red", "star", 50, 50), obj("blue", "square", 250, 50)]
    assert is_unique(most, with_square, W, H, 0)
    with_octagon = [obj("red", "star", 50, 50), obj("blue", "octagon", 150, 50)]
    assert not is_unique(most, with_octagon, W, H, 1)
    # Equal corner counts tie: neither square nor rectangle has "the most".
    tie = [obj("red", "square", 50, 50), obj("blue", "rectangle", 150, 50), obj("blue", "circle", 250, 50)]
    assert not is_unique(most, tie, W, H, 0) and not is_unique(most, tie, W, H, 1)
    fewest = {"op": "rank", "filter": {}, "key": "corners", "order": "asc", "k": 1}
    assert is_unique(fewest, tie, W, H, 2)


def test_relations_strict_and_lenient():
    anchor = {"op": "filter", "filter": {"colour": "blue"}}
    scene = [obj("blue", "square", 200, 150, r=30), obj("red", "circle", 150, 60), obj("red", "circle", 185, 250)]
    left = {"op": "relation", "filter": {"colour": "red"}, "relation": "left_of", "anchor": anchor}
    # Circle 1 is left of the anchor's whole extent; circle 2 only left of its centre.
    strict, lenient = both(left, scene)
    assert strict == [1] and lenient == [1, 2]
    assert not is_unique(left, scene, W, H, 1)
    scene[2]["centre"] = [260, 250]
    assert is_unique(left, scene, W, H, 1)
    assert is_unique({**left, "relation": "above"}, scene, W, H, 1)
    assert is_unique({**left, "relation": "below"}, scene, W, H, 2)
    assert is_unique({**left, "relation": "right_of"}, scene, W, H, 2)


def test_ambiguous_anchor_makes_the_query_ambiguous():
    scene = [obj("blue", "square", 300, 150), obj("blue", "square", 100, 150), obj("red", "circle", 200, 150)]
    query = {
        "op": "relation",
        "filter": {"colour": "red"},
        "relation": "left_of",
        "anchor": {"op": "filter", "filter": {"colour": "blue"}},
    }
    assert resolve(query, scene, W, H, "strict") == []
    assert resolve(query, scene, W, H, "lenient") == [2]
    assert not is_unique(query, scene, W, H, 2)


def test_distance_rank_excludes_the_anchor():
    scene = [obj("blue", "square", 200, 150), obj("red", "circle", 240, 150), obj("red", "circle", 380, 150)]
    anchor = {"op": "filter", "filter": {"colour": "blue"}}
    closest = {"op": "rank", "filter": {}, "key": "distance", "order": "asc", "k": 1, "anchor": anchor}
    assert is_unique(closest, scene, W, H, 1)
    assert is_unique({**closest, "order": "desc"}, scene, W, H, 2)


@pytest.mark.parametrize(
    "query",
    [
        {"op": "nope", "filter": {}},
        {"op": "filter", "filter": {"color": "red"}},
        {"op": "filter", "filter": {"function": "fly"}},
        {"op": "rank", "filter": {}, "key": "weight", "order": "asc", "k": 1},
        {"op": "rank", "filter": {}, "key": "x", "order": "up", "k": 1},
        {"op": "relation", "filter": {}, "relation": "inside", "anchor": {"op": "filter", "filter": {}}},
        {"op": "relation", "filter": {}, "relation": "left_of"},
        {"op": "rank", "filter": {}, "key": "distance", "order": "asc", "k": 1},
    ],
)
def test_malformed_queries_raise(query):
    scene = [obj("red", "circle", 50, 50), obj("blue", "square", 150, 50)]
    with pytest.raises(ValueError):
        resolve(query, scene, W, H)


def test_bad_mode_raises():
    with pytest.raises(ValueError, match="mode"):
        resolve({"op": "filter", "filter": {}}, [], W, H, mode="fuzzy")


def test_every_function_names_known_shapes():
    for function in SHAPE_FUNCTIONS.values():
        assert function.shapes and set(function.shapes) <= set(SHAPES)
        assert function.short and function.long


def test_builders_only_return_unique_queries():
    rng = np.random.default_rng(3)
    for trial in range(60):
        n = int(rng.integers(3, 9))
        scene = [
            obj(
                ["red", "blue", "green"][int(rng.integers(3))],
                ["circle", "square", "star", "octagon"][int(rng.integers(4))],
                float(rng.uniform(20, W - 20)),
                float(rng.uniform(20, H - 20)),
                size=["small", "medium", "large"][int(rng.integers(3))],
                area=int(rng.integers(300, 3000)),
            )
            for _ in range(n)
        ]
        for name, builder in BUILDERS.items():
            target = int(rng.integers(n))
            query = builder(rng, scene, target, W, H)
            if query is None:
                continue
            if name == "every":  # the whole class of at least two, the target among them, both readings alike
                targets = query_targets(query, scene, W, H)
                assert target in targets and 2 <= len(targets) < n, (trial, query)
            elif name == "absent":  # nothing fits, under both readings
                assert query_targets(query, scene, W, H) == [], (trial, query)
            else:
                assert is_unique(query, scene, W, H, target), (trial, name, query)


def test_generate_query_returns_a_style_of_the_level():
    rng = np.random.default_rng(0)
    scene = [obj("red", "circle", 50, 50), obj("blue", "square", 250, 200)]
    found = generate_query(rng, scene, W, H, LEVELS[1])
    assert found is not None
    query, target, style = found
    assert style in LEVELS[1].query_weights
    assert is_unique(query, scene, W, H, target)


def test_rendering_examples():
    rng = np.random.default_rng(0)
    short = lambda q: render_query(q, rng, long=False)  # noqa: E731
    anchor = {"op": "filter", "filter": {"colour": "blue", "shape": "circle"}}
    assert short({"op": "filter", "filter": {"colour": "red", "shape": "triangle"}}) == "the red triangle"
    assert short({"op": "filter", "filter": {"size": "large", "shape": "star"}}) == "the large star"
    assert short({"op": "rank", "filter": {}, "key": "x", "order": "asc", "k": 1}) == "the leftmost shape"
    assert short({"op": "rank", "filter": {}, "key": "area", "order": "desc", "k": 1}) == "the largest shape"
    assert short({"op": "rank", "filter": {}, "key": "corners", "order": "desc", "k": 1}) == (
        "the shape with the most corners"
    )
    assert short({"op": "rank", "filter": {"shape": "circle"}, "key": "x", "order": "asc", "k": 2}) == (
        "the second circle from the left"
    )
    assert short({"op": "relation", "filter": {}, "relation": "left_of", "anchor": anchor}) == (
        "the shape to the left of the blue circle"
    )
    assert short({"op": "filter", "filter": {"colour": "red", "function": "roll"}}) == "the red shape that could roll"
    assert short({"op": "filter", "filter": {"not_colour": "red"}}) == "the shape that is not red"
    assert short({"op": "filter", "filter": {"shape": "circle", "not_shape": "ellipse"}}) == (
        "the circle that is not an ellipse"
    )
    assert short({"op": "filter", "filter": {"colour_count": 1}}) == "the shape whose colour appears only once"
    assert short({"op": "rank", "filter": {}, "key": "distance", "order": "asc", "k": 1, "anchor": anchor}) == (
        "the shape closest to the blue circle"
    )


def test_long_queries_are_sentences():
    rng = np.random.default_rng(1)
    query = {"op": "rank", "filter": {"shape": "circle"}, "key": "y", "order": "desc", "k": 1}
    for _ in range(20):
        text = render_query(query, rng, long=True)
        assert text[0].isupper() and text[-1] in ".?"
        assert len(text.split()) > 6
    for _ in range(20):
        text = render_query({"op": "filter", "filter": {"shape": "circle"}}, rng, long=True, n_objects=1)
        assert "several" not in text and "among the shapes" not in text
    assert SINGLE_OBJECT_FRAMES

"""Build structured queries that pick exactly one object of a shapes scene (or, on purpose, several or none).

Each builder takes a target and tries to describe it in one style (attributes, a superlative, an
ordinal, a spatial relation, a distance, a negation, a function or a count). It proposes candidate
queries and keeps the first one :func:`~segzero_env.datasets.shapes_resolver.is_unique` accepts, so
nothing ambiguous ever leaves this module. :func:`generate_query` picks a style by the level's weights.

Two styles leave the one-object rule, each with its own proof: ``every`` names a class of at least
two objects, all of them the answer ("every red shape"; the filter is exact attributes, so both
readings give the same set), and ``absent`` names a colour and shape that no object has together
("the blue star" when no star is blue), so the answer is empty under both readings.
:func:`query_targets` gives the answer of any query these builders make.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from segzero_env.datasets.shapes_levels import LevelConfig
from segzero_env.datasets.shapes_resolver import is_unique, matches_filter, resolve
from segzero_env.datasets.shapes_vocab import COLOURS, SHAPE_FUNCTIONS, SHAPES

Objects = Sequence[dict[str, Any]]
Query = dict[str, Any]
Builder = Callable[[np.random.Generator, Objects, int, int, int], "Query | None"]

_ATTRS = ("colour", "shape", "size")
_GENERATION_TRIES = 12


def _shuffled(rng: np.random.Generator, items: Sequence[Any]) -> list[Any]:
    return [items[int(i)] for i in rng.permutation(len(items))]


def _members(flt: dict[str, Any], objects: Objects) -> list[int]:
    return [i for i, o in enumerate(objects) if matches_filter(o, flt, objects)]


def _useful_attrs(objects: Objects) -> list[str]:
    """Attributes that vary in the scene (naming a size when every object is large says nothing)."""
    return [a for a in _ATTRS if len({o[a] for o in objects}) > 1] or ["colour", "shape"]


def _class_filters(rng: np.random.Generator, obj: dict[str, Any], objects: Objects, with_empty: bool = True) -> list:
    """List filters that name a class the target belongs to: all shapes, its shape, its colour, or both."""
    options: list[dict[str, Any]] = [{"shape": obj["shape"]}, {"colour": obj["colour"]}]
    if with_empty:
        options.append({})
    options = _shuffled(rng, options)
    options.append({"colour": obj["colour"], "shape": obj["shape"]})
    return options


def _unique(query: Query, objects: Objects, width: int, height: int, target: int) -> Query | None:
    return query if is_unique(query, objects, width, height, target) else None


def attribute_filter(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> Query | None:
    """Smallest set of the target's own attributes that no other object shares ("the red triangle")."""
    obj = objects[target]
    attrs = _useful_attrs(objects)
    for n in range(1, len(attrs) + 1):
        subsets = _shuffled(rng, list(itertools.combinations(attrs, n)))
        # One object alone: vary between colour, shape and both instead of always "the shape".
        if len(objects) == 1 and n == 1 and rng.random() < 0.6:
            continue
        for subset in subsets:
            query = {"op": "filter", "filter": {a: obj[a] for a in subset}}
            if _unique(query, objects, width, height, target):
                return query
    return None


def functional(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> Query | None:
    """Describe the shape by what it is like or could do ("the shape that could roll"), plus attributes."""
    obj = objects[target]
    functions = _shuffled(rng, [f.name for f in SHAPE_FUNCTIONS.values() if obj["shape"] in f.shapes])
    extras: list[dict[str, Any]] = [{}, {"colour": obj["colour"]}, {"size": obj["size"]}]
    for name in functions:
        for extra in extras:
            query = _unique({"op": "filter", "filter": {**extra, "function": name}}, objects, width, height, target)
            if query:
                return query
    return None


def extreme(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> Query | None:
    """Describe the target as the extreme of a class of at least two ("the leftmost circle")."""
    keys = _shuffled(rng, [(k, o) for k in ("x", "y", "area", "corners") for o in ("asc", "desc")])
    for flt in _class_filters(rng, objects[target], objects):
        if len(_members(flt, objects)) < 2:
            continue
        for key, order in keys:
            query = {"op": "rank", "filter": flt, "key": key, "order": order, "k": 1}
            if _unique(query, objects, width, height, target):
                return query
    return None


def ordinal(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> Query | None:
    """Describe the target as the k-th (k >= 2) of a class of at least three ("the second circle from the left")."""
    keys = _shuffled(rng, [(k, o) for k in ("x", "y", "area") for o in ("asc", "desc")])
    for flt in _class_filters(rng, objects[target], objects):
        size = len(_members(flt, objects))
        if size < 3:
            continue
        for key, order in keys:
            for k in range(2, min(size, 5) + 1):
                query = {"op": "rank", "filter": flt, "key": key, "order": order, "k": k}
                if _unique(query, objects, width, height, target):
                    return query
    return None


def _anchors(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> list[tuple]:
    """Other objects with a unique attribute description, as ``(index, query)``."""
    out = []
    for a in _shuffled(rng, [i for i in range(len(objects)) if i != target]):
        anchor = attribute_filter(rng, objects, a, width, height)
        if anchor is not None:
            out.append((a, anchor))
    return out


def relation(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> Query | None:
    """Describe the target by where it lies relative to another object ("the triangle left of the blue circle")."""
    relations = _shuffled(rng, ["left_of", "right_of", "above", "below"])
    for _, anchor in _anchors(rng, objects, target, width, height)[:3]:
        for flt in _class_filters(rng, objects[target], objects):
            for rel in relations:
                query = {"op": "relation", "filter": flt, "relation": rel, "anchor": anchor}
                if _unique(query, objects, width, height, target):
                    return query
    return None


def distance(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> Query | None:
    """Describe the target by its distance to another object ("the circle closest to the star")."""
    orders = _shuffled(rng, ["asc", "desc"])
    for a, anchor in _anchors(rng, objects, target, width, height)[:3]:
        for flt in _class_filters(rng, objects[target], objects):
            if len([i for i in _members(flt, objects) if i != a]) < 2:
                continue
            for order in orders:
                query = {"op": "rank", "filter": flt, "key": "distance", "order": order, "k": 1, "anchor": anchor}
                if _unique(query, objects, width, height, target):
                    return query
    return None


def negation(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> Query | None:
    """Describe the target as a class of at least two minus one attribute ("the circle that is not red")."""
    obj = objects[target]
    for flt in _class_filters(rng, obj, objects):
        members = _members(flt, objects)
        if len(members) < 2:
            continue
        negations = [("not_colour", objects[i]["colour"]) for i in members if objects[i]["colour"] != obj["colour"]]
        negations += [("not_shape", objects[i]["shape"]) for i in members if objects[i]["shape"] != obj["shape"]]
        for key, value in _shuffled(rng, sorted(set(negations))):
            query = {"op": "filter", "filter": {**flt, key: value}}
            if _unique(query, objects, width, height, target):
                return query
    return None


def count(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> Query | None:
    """Describe the target by how often its colour or shape occurs ("the circle whose colour appears only once")."""
    obj = objects[target]
    for attr in _shuffled(rng, ["colour", "shape"]):
        n = sum(o[attr] == obj[attr] for o in objects)
        other = "shape" if attr == "colour" else "colour"
        for extra in _shuffled(rng, [{}, {other: obj[other]}]):
            query = _unique({"op": "filter", "filter": {**extra, f"{attr}_count": n}}, objects, width, height, target)
            if query:
                return query
    return None


def every(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> Query | None:
    """Name a class of two or more objects (not the whole scene), all of them the answer ("every red shape")."""
    for flt in _class_filters(rng, objects[target], objects, with_empty=False):
        if 2 <= len(_members(flt, objects)) < len(objects):
            return {"op": "filter", "filter": flt, "quantifier": "every"}
    return None


def absent(rng: np.random.Generator, objects: Objects, target: int, width: int, height: int) -> Query | None:
    """Name a colour and shape that no object has together ("the blue star" when no star is blue).

    Half the time both words occur in the scene, on different objects, so only reading them together
    shows that nothing fits; otherwise one of them is missing from the scene altogether.
    """
    colours = sorted({o["colour"] for o in objects})
    shapes = sorted({o["shape"] for o in objects})
    pairs = {(o["colour"], o["shape"]) for o in objects}
    crossed = [(c, s) for c in colours for s in shapes if (c, s) not in pairs]
    if crossed and rng.random() < 0.5:
        colour, shape = crossed[int(rng.integers(len(crossed)))]
    elif rng.random() < 0.5:
        colour = colours[int(rng.integers(len(colours)))]
        missing = [s for s in SHAPES if s not in shapes]
        shape = missing[int(rng.integers(len(missing)))]
    else:
        missing = [c for c in COLOURS if c not in colours]
        colour = missing[int(rng.integers(len(missing)))]
        shape = shapes[int(rng.integers(len(shapes)))]
    query = {"op": "filter", "filter": {"colour": colour, "shape": shape}}
    no_one = resolve(query, objects, width, height, "strict") == resolve(query, objects, width, height, "lenient") == []
    return query if no_one else None


def query_targets(query: Query, objects: Objects, width: int, height: int) -> list[int]:
    """The objects ``query`` asks for: the unique target, every member of an ``every`` class, or none.

    Raises:
        ValueError: The two readings disagree (the builders never produce such a query).
    """
    strict = resolve(query, objects, width, height, "strict")
    if strict != resolve(query, objects, width, height, "lenient"):
        raise ValueError(f"query {query} is ambiguous in this scene: the strict and lenient readings differ")
    return strict


BUILDERS: dict[str, Builder] = {
    "attribute": attribute_filter,
    "functional": functional,
    "extreme": extreme,
    "ordinal": ordinal,
    "relation": relation,
    "distance": distance,
    "negation": negation,
    "count": count,
    "every": every,
    "absent": absent,
}
"""Query styles by name; a level's ``query_weights`` refer to these names."""


def generate_query(
    rng: np.random.Generator, objects: Objects, width: int, height: int, cfg: LevelConfig
) -> tuple[Query, int, str] | None:
    """Draw a style and a target and build a unique query; ``None`` if the scene allows none.

    Returns:
        ``(query, target_index, style)``.
    """
    styles = list(cfg.query_weights)
    weights = np.asarray([cfg.query_weights[s] for s in styles], dtype=np.float64)
    weights /= weights.sum()
    for _ in range(_GENERATION_TRIES):
        style = styles[int(rng.choice(len(styles), p=weights))]
        target = int(rng.integers(len(objects)))
        query = BUILDERS[style](rng, objects, target, width, height)
        if query is not None:
            return query, target, style
    # Rare: the drawn styles did not fit. Sweep every target and style before giving up on the scene.
    for target in _shuffled(rng, list(range(len(objects)))):
        for style in styles:
            query = BUILDERS[style](rng, objects, target, width, height)
            if query is not None:
                return query, target, style
    return None

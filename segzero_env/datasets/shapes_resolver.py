"""Evaluate a structured shapes query over a scene's object list: the proof that a query picks one object.

A query is a JSON-ready dict (stored in ``Sample.meta["query_struct"]``) in one of three forms:

``{"op": "filter", "filter": F}``
    Every object matching the filter ``F``.
``{"op": "rank", "filter": F, "key": K, "order": "asc" | "desc", "k": n[, "anchor": Q]}``
    The ``n``-th object (1-based) among those matching ``F``, sorted by ``K`` in ``order``. Keys:
    ``"x"`` (asc = from the left), ``"y"`` (asc = from the top), ``"area"``, ``"corners"`` and
    ``"distance"`` (to the unique object picked by the query ``anchor``; the anchor itself is excluded).
``{"op": "relation", "filter": F, "relation": R, "anchor": Q}``
    Objects matching ``F`` that lie ``R`` (``left_of``, ``right_of``, ``above``, ``below``) of the
    unique object picked by the query ``anchor``.

A filter ``F`` is a dict whose keys are all optional: ``colour``, ``shape``, ``size``, ``function``
(a :data:`~segzero_env.datasets.shapes_vocab.SHAPE_FUNCTIONS` name: the shape must be one it fits),
``not_colour``, ``not_shape``, ``colour_count`` / ``shape_count`` (the number of objects in the whole
scene sharing this object's colour / shape, the object included).

Vagueness is handled with two readings. ``mode="strict"`` keeps an object only when it matches under
the most demanding reasonable reading; ``mode="lenient"`` keeps every object that matches under some
reasonable reading. A query is accepted (:func:`is_unique`) only when both readings return exactly the
target, so no reader can pick a different object. The readings differ on:

- positions: two centres are ordered only when they are more than 5% of the image width (height) apart;
- areas and distances: ordered only when they differ by more than a factor 1.3;
- corners: a star counts as 5 or 10 corners;
- relations: strict "left of" needs the centre left of the anchor's whole extent, lenient only left of
  the anchor's centre (likewise for the other directions);
- an anchor must itself resolve to exactly one object, otherwise strict returns nothing and lenient
  uses every object the anchor could mean.

Objects are dicts with at least ``colour``, ``shape``, ``size``, ``centre`` ``[x, y]``, ``extent``
``[x1, y1, x2, y2]`` (the full shape's box) and ``area`` (the full shape's pixel count).

>>> objs = [
...     {"colour": "red", "shape": "circle", "size": "large", "centre": [50, 50], "extent": [20, 20, 80, 80],
...      "area": 2800},
...     {"colour": "blue", "shape": "circle", "size": "small", "centre": [150, 50], "extent": [140, 40, 160, 60],
...      "area": 300},
... ]
>>> resolve({"op": "filter", "filter": {"shape": "circle"}}, objs, 200, 100)
[0, 1]
>>> is_unique({"op": "rank", "filter": {}, "key": "area", "order": "desc", "k": 1}, objs, 200, 100, target=0)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from segzero_env.datasets.shapes_vocab import CORNERS, SHAPE_FUNCTIONS

POSITION_MARGIN = 0.05
"""Two centres are ordered only when further apart than this fraction of the image width (height)."""

RATIO_MARGIN = 1.3
"""Two areas (or distances) are ordered only when their ratio exceeds this."""

FILTER_KEYS = frozenset(
    {"colour", "shape", "size", "function", "not_colour", "not_shape", "colour_count", "shape_count"}
)
RANK_KEYS = frozenset({"x", "y", "area", "corners", "distance"})
RELATIONS = frozenset({"left_of", "right_of", "above", "below"})
MODES = frozenset({"strict", "lenient"})


def matches_filter(obj: dict[str, Any], flt: dict[str, Any], objects: Sequence[dict[str, Any]]) -> bool:
    """Whether ``obj`` satisfies every condition of the filter ``flt`` (exact, no vagueness)."""
    unknown = set(flt) - FILTER_KEYS
    if unknown:
        raise ValueError(f"unknown filter key(s) {sorted(unknown)}; allowed: {sorted(FILTER_KEYS)}")
    if "colour" in flt and obj["colour"] != flt["colour"]:
        return False
    if "shape" in flt and obj["shape"] != flt["shape"]:
        return False
    if "size" in flt and obj["size"] != flt["size"]:
        return False
    if "function" in flt:
        if flt["function"] not in SHAPE_FUNCTIONS:
            raise ValueError(f"unknown shape function {flt['function']!r}; known: {sorted(SHAPE_FUNCTIONS)}")
        if obj["shape"] not in SHAPE_FUNCTIONS[flt["function"]].shapes:
            return False
    if "not_colour" in flt and obj["colour"] == flt["not_colour"]:
        return False
    if "not_shape" in flt and obj["shape"] == flt["not_shape"]:
        return False
    if "colour_count" in flt and sum(o["colour"] == obj["colour"] for o in objects) != flt["colour_count"]:
        return False
    return not ("shape_count" in flt and sum(o["shape"] == obj["shape"] for o in objects) != flt["shape_count"])


def _interval(
    obj: dict[str, Any], key: str, width: int, height: int, anchor: dict[str, Any] | None
) -> tuple[float, ...]:
    """Return the range of values a reader may assign ``obj`` for ``key``, as ``(low, high)``."""
    if key == "x":
        half = POSITION_MARGIN * width / 2
        return obj["centre"][0] - half, obj["centre"][0] + half
    if key == "y":
        half = POSITION_MARGIN * height / 2
        return obj["centre"][1] - half, obj["centre"][1] + half
    half_log = math.log(RATIO_MARGIN) / 2
    if key == "area":
        value = math.log(max(float(obj["area"]), 1.0))
        return value - half_log, value + half_log
    if key == "corners":
        low, high = CORNERS[obj["shape"]]
        return float(low), float(high)
    assert anchor is not None  # only "distance" is left, and it always has an anchor
    dist = math.hypot(obj["centre"][0] - anchor["centre"][0], obj["centre"][1] - anchor["centre"][1])
    value = math.log(max(dist, 1.0))
    return value - half_log, value + half_log


def _rank(
    candidates: list[int],
    objects: Sequence[dict[str, Any]],
    query: dict[str, Any],
    width: int,
    height: int,
    anchor: dict[str, Any] | None,
    mode: str,
) -> list[int]:
    key, order, k = query["key"], query["order"], int(query["k"])
    spans: dict[int, tuple[float, float]] = {}
    for i in candidates:
        low, high = _interval(objects[i], key, width, height, anchor)
        spans[i] = (low, high) if order == "asc" else (-high, -low)
    out = []
    for i in candidates:
        low_i, high_i = spans[i]
        others = [spans[j] for j in candidates if j != i]
        surely_before = sum(high_j < low_i for _, high_j in others)
        possibly_before = sum(low_j <= high_i for low_j, _ in others)
        if mode == "strict":
            keep = surely_before == possibly_before == k - 1
        else:
            keep = surely_before <= k - 1 <= possibly_before
        if keep:
            out.append(i)
    return out


def _related(obj: dict[str, Any], anchor: dict[str, Any], relation: str, mode: str) -> bool:
    x, y = obj["centre"]
    ax, ay = anchor["centre"]
    x1, y1, x2, y2 = anchor["extent"]
    strict = mode == "strict"
    if relation == "left_of":
        return x < (x1 if strict else ax)
    if relation == "right_of":
        return x > (x2 if strict else ax)
    if relation == "above":
        return y < (y1 if strict else ay)
    return y > (y2 if strict else ay)


def resolve(
    query: dict[str, Any], objects: Sequence[dict[str, Any]], width: int, height: int, mode: str = "strict"
) -> list[int]:
    """Return the indices of the objects ``query`` picks, under the ``strict`` or ``lenient`` reading.

    Args:
        query: Structured query (see the module docstring).
        objects: The scene's objects, as stored in ``Sample.meta["objects"]``.
        width: Image width in pixels (sets the position margin).
        height: Image height in pixels.
        mode: ``"strict"`` or ``"lenient"``.

    Returns:
        Sorted object indices.

    Raises:
        ValueError: If the query is malformed (unknown op, key, relation or mode).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'strict' or 'lenient', got {mode!r}")
    _check_shape(query)
    op = query["op"]
    flt = query.get("filter", {})
    candidates = [i for i, obj in enumerate(objects) if matches_filter(obj, flt, objects)]
    if op == "filter":
        return candidates
    anchors: list[int] = []
    if "anchor" in query:
        anchors = resolve(query["anchor"], objects, width, height, mode)
        if mode == "strict" and len(anchors) != 1:
            return []
    if op == "rank" and query["key"] != "distance":
        return _rank(candidates, objects, query, width, height, None, mode)
    found: set[int] = set()
    for a in anchors:
        if op == "rank":
            pool = [i for i in candidates if i != a]
            found.update(_rank(pool, objects, query, width, height, objects[a], mode))
        else:
            found.update(i for i in candidates if i != a and _related(objects[i], objects[a], query["relation"], mode))
    return sorted(found)


def _check_shape(query: dict[str, Any]) -> None:
    """Reject a malformed query up front, so errors do not depend on the scene."""
    op = query.get("op")
    if op not in ("filter", "rank", "relation"):
        raise ValueError(f"unknown query op {op!r}; use 'filter', 'rank' or 'relation'")
    if op == "rank":
        if query.get("key") not in RANK_KEYS:
            raise ValueError(f"unknown rank key {query.get('key')!r}; allowed: {sorted(RANK_KEYS)}")
        if query.get("order") not in ("asc", "desc"):
            raise ValueError(f"rank order must be 'asc' or 'desc', got {query.get('order')!r}")
        if not isinstance(query.get("k"), int) or query["k"] < 1:
            raise ValueError(f"rank 'k' must be a positive int, got {query.get('k')!r}")
        if query["key"] == "distance" and "anchor" not in query:
            raise ValueError("a rank query on 'distance' needs an 'anchor' query")
    if op == "relation":
        if query.get("relation") not in RELATIONS:
            raise ValueError(f"unknown relation {query.get('relation')!r}; allowed: {sorted(RELATIONS)}")
        if "anchor" not in query:
            raise ValueError("a relation query needs an 'anchor' query")


def is_unique(query: dict[str, Any], objects: Sequence[dict[str, Any]], width: int, height: int, target: int) -> bool:
    """Whether both readings of ``query`` pick exactly ``target`` and nothing else."""
    strict = resolve(query, objects, width, height, "strict")
    return strict == [target] and resolve(query, objects, width, height, "lenient") == [target]

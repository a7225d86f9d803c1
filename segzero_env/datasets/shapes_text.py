"""Turn a structured shapes query into English: a short phrase or a long sentence.

The text only re-words the structure; what the query means is decided by
:mod:`segzero_env.datasets.shapes_resolver`. Long sentences may swap a name for world knowledge
("the colour of a fire truck" for red, "with three sides" for a triangle), as ReasonSeg's long
queries ask for reasoning rather than naming.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> render_query({"op": "rank", "filter": {"shape": "circle"}, "key": "x", "order": "asc", "k": 2}, rng, long=False)
'the second circle from the left'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segzero_env.datasets.shapes_vocab import COLOUR_PHRASES, COUNT_WORDS, ORDINAL_WORDS, SHAPE_FUNCTIONS, SIZE_WORDS

LONG_FRAMES: tuple[str, ...] = (
    "Please segment {d} in this image.",
    "Can you find {d} in this picture?",
    "Which region of the image shows {d}?",
    "Look at all the shapes in the image and point out {d}.",
    "There are several shapes drawn here; I am looking for {d}. Where is it?",
    "Identify {d} among the shapes drawn in this image.",
    "Somebody asked for {d}. Which part of the picture is that?",
    "Examine the picture carefully and mark {d}.",
    "A child is asked to pick {d} from all the shapes on the table. Which one should the child pick?",
    "Suppose you are describing this picture to a friend who cannot see it. Which region is {d}?",
    "Think about each shape in turn and decide which one is {d}; show me that shape.",
)
"""Sentence frames for long queries; ``{d}`` is a noun phrase starting with "the"."""

SINGLE_OBJECT_FRAMES: tuple[str, ...] = tuple(
    f for f in LONG_FRAMES if not any(word in f for word in ("several", "all the shapes", "among the shapes", "each"))
)
"""Frames that stay true when the picture holds a single shape."""

EVERY_FRAMES: tuple[str, ...] = (
    "Please segment {d} in this image.",
    "Find {d} in this picture; there may be more than one.",
    "Which regions of the image show {d}?",
    "Look at all the shapes in the image and mark {d}.",
    "Somebody asked for {d}. Which parts of the picture are those?",
)
"""Sentence frames for queries naming a class (``{d}`` starts with "every")."""

_GENERIC_HEADS = ("shape", "object", "figure")
_EXTREME_WORDS = {
    ("x", "asc"): ("leftmost", "leftmost"),
    ("x", "desc"): ("rightmost", "rightmost"),
    ("y", "asc"): ("topmost", "highest"),
    ("y", "desc"): ("bottommost", "lowest"),
    ("area", "asc"): ("smallest", "smallest"),
    ("area", "desc"): ("largest", "biggest"),
}
_DIRECTIONS = {("x", "asc"): "left", ("x", "desc"): "right", ("y", "asc"): "top", ("y", "desc"): "bottom"}
_RELATION_WORDS = {
    "left_of": ("to the left of", "that sits to the left of"),
    "right_of": ("to the right of", "that sits to the right of"),
    "above": ("above", "that is located above"),
    "below": ("below", "that is located below"),
}
# Descriptions that fit exactly one shape, to paraphrase its name in long queries.
_SHAPE_PARAPHRASES = {
    shape: [f.long for f in SHAPE_FUNCTIONS.values() if f.shapes == (shape,)]
    for shape in {s for f in SHAPE_FUNCTIONS.values() for s in f.shapes}
}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun_parts(flt: dict[str, Any], rng: np.random.Generator, long: bool) -> tuple[list[str], str, list[str]]:
    """Split a filter into adjectives, a head noun and trailing clauses."""
    adjectives: list[str] = []
    posts: list[str] = []
    if "size" in flt:
        adjectives.append(SIZE_WORDS[flt["size"]])
    if "colour" in flt:
        if long and rng.random() < 0.4:
            posts.append(f"that is {COLOUR_PHRASES[flt['colour']]}")
        else:
            adjectives.append(flt["colour"])
    head = _GENERIC_HEADS[int(rng.integers(len(_GENERIC_HEADS)))] if long else "shape"
    if "shape" in flt:
        paraphrases = _SHAPE_PARAPHRASES.get(flt["shape"], [])
        if long and paraphrases and rng.random() < 0.35:
            posts.append(paraphrases[int(rng.integers(len(paraphrases)))])
        else:
            head = flt["shape"]
    if "function" in flt:
        function = SHAPE_FUNCTIONS[flt["function"]]
        posts.append(function.long if long else function.short)
    if "not_colour" in flt:
        posts.append(f"that is not {flt['not_colour']}")
    if "not_shape" in flt:
        posts.append(f"that is not {_article(flt['not_shape'])} {flt['not_shape']}")
    for attr, noun in (("colour", "colour"), ("shape", "outline")):
        count = flt.get(f"{attr}_count")
        if count is not None:
            words = COUNT_WORDS.get(int(count), f"exactly {int(count)} times")
            posts.append(f"whose {noun} appears {words}" + (" in the whole picture" if long else ""))
    return adjectives, head, posts


def _join(pre: list[str], adjectives: list[str], head: str, posts: list[str]) -> str:
    text = " ".join(["the", *pre, *adjectives, head])
    for i, post in enumerate(posts):
        text += (" " if i == 0 else " and ") + post
    return text


def noun_phrase(query: dict[str, Any], rng: np.random.Generator, long: bool) -> str:
    """Write the English noun phrase (starting with "the") for a structured query."""
    adjectives, head, posts = _noun_parts(query.get("filter", {}), rng, long)
    op = query["op"]
    if op == "filter" and query.get("quantifier") == "every":
        return "every" + _join([], adjectives, head, posts).removeprefix("the")
    if op == "filter":
        return _join([], adjectives, head, posts)
    if op == "relation":
        short_words, long_words = _RELATION_WORDS[query["relation"]]
        anchor = noun_phrase(query["anchor"], rng, long)
        return _join([], adjectives, head, [*posts, f"{long_words if long else short_words} {anchor}"])
    key, order, k = query["key"], query["order"], int(query["k"])
    ordinal = ORDINAL_WORDS.get(k, f"number {k}")
    if key == "corners":
        most = "most" if order == "desc" else "fewest"
        superlative = most if k == 1 else f"{ordinal} {most}"
        return _join([], adjectives, head, [f"with the {superlative} corners", *posts])
    if key == "distance":
        word = "closest to" if order == "asc" else "farthest from"
        anchor = noun_phrase(query["anchor"], rng, long)
        pre = [] if k == 1 else [ordinal]
        # After other clauses the distance becomes a clause too, so it cannot attach to the wrong noun.
        return _join(pre, adjectives, head, [*posts, f"that is {word} {anchor}" if posts else f"{word} {anchor}"])
    if k == 1:
        word = _EXTREME_WORDS[(key, order)][int(long)]
        return _join([word], adjectives, head, posts)
    if key == "area":
        return _join([ordinal, _EXTREME_WORDS[(key, order)][0]], adjectives, head, posts)
    direction = _DIRECTIONS[(key, order)]
    if posts:
        return _join([ordinal], adjectives, head, posts) + f", counting from the {direction}"
    return _join([ordinal], adjectives, head, [f"from the {direction}"])


def render_query(query: dict[str, Any], rng: np.random.Generator, long: bool, n_objects: int = 2) -> str:
    """Write a short phrase ("the leftmost red circle") or a long sentence asking for the same object.

    Args:
        query: Structured query (see :mod:`segzero_env.datasets.shapes_resolver`).
        rng: Chooses frames and paraphrases.
        long: Write a full sentence instead of a noun phrase.
        n_objects: Objects in the scene; with one, frames that speak of several shapes are not used.
    """
    phrase = noun_phrase(query, rng, long)
    if not long:
        return phrase
    if query.get("quantifier") == "every":
        frames = EVERY_FRAMES
    else:
        frames = LONG_FRAMES if n_objects > 1 else SINGLE_OBJECT_FRAMES
    frame = frames[int(rng.integers(len(frames)))]
    sentence = frame.format(d=phrase)
    return sentence[0].upper() + sentence[1:]

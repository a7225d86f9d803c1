"""COCO ``segmentation`` values (polygons, uncompressed and compressed RLE) to masks, checked before decoding.

pycocotools trusts what it is given: RLE counts that do not add up to ``height * width`` and
compressed strings with characters outside its alphabet make it read memory it does not own, so
the same annotation can decode to a different mask on each access. Polygons far outside the image
cost time in proportion to their size. Every value is therefore checked here first, and a bad one
is a :class:`~segzero_env.datasets.errors.DatasetError`: ground truth is either exact or refused.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from segzero_env.datasets.errors import SKIP_HINT, DatasetError

_RLE_FIRST_CHAR = 48  # '0': compressed counts use 6-bit digits written as chr(48 + digit)
_RLE_LAST_CHAR = _RLE_FIRST_CHAR + 63


def _is_number(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def rle_string_counts(counts: str) -> list[int]:
    """Decode a compressed COCO RLE string to its run lengths, refusing anything pycocotools would misread.

    The format (pycocotools' ``rleToString``): each count is written in 5-bit groups, least
    significant first, as ``chr(48 + group)`` with bit 5 (``0x20``) set while more groups follow;
    the last group's bit 4 carries the sign. From the fourth count on, the value stored is the
    difference to the count two places before.

    Raises:
        ValueError: A character outside ``'0'..'o'``, a count left unfinished at the end, or a
            negative run length.

    >>> rle_string_counts("5220003")  # a 3 x 2 block in a 4 x 5 mask, as pycocotools encodes it
    [5, 2, 2, 2, 2, 2, 5]
    >>> rle_string_counts("5P")
    Traceback (most recent call last):
    ...
    ValueError: the string ends inside a count
    """
    runs: list[int] = []
    value, shift, more = 0, 0, False
    for position, char in enumerate(counts):
        digit = ord(char) - _RLE_FIRST_CHAR
        if not 0 <= digit <= _RLE_LAST_CHAR - _RLE_FIRST_CHAR:
            raise ValueError(f"character {char!r} at {position} is outside '0'..'o'")
        value |= (digit & 0x1F) << shift
        shift += 5
        more = bool(digit & 0x20)
        if more:
            continue
        if digit & 0x10:
            value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError(f"run {len(runs)} has negative length {value}")
        runs.append(value)
        value, shift = 0, 0
    if more:
        raise ValueError("the string ends inside a count")
    return runs


def _checked_rle(segmentation: dict[str, Any], height: int, width: int, where: str) -> dict[str, Any]:
    """Return a pycocotools RLE for ``segmentation`` once its size and counts are checked."""
    from pycocotools import mask as mask_utils

    size = segmentation.get("size")
    if not isinstance(size, list) or len(size) != 2 or not all(type(v) is int for v in size):
        raise DatasetError(where, f"RLE size {size!r} is not [height, width]", SKIP_HINT)
    if size != [height, width]:
        raise DatasetError(where, f"RLE size {size} is not the image size [{height}, {width}]", SKIP_HINT)
    counts = segmentation["counts"]
    if isinstance(counts, list):
        runs = counts
        bad = next((v for v in runs if type(v) is not int or v < 0), None)
        if bad is not None:
            raise DatasetError(where, f"RLE counts hold {bad!r}, not a run length", SKIP_HINT)
    elif isinstance(counts, (str, bytes)):
        text = counts.decode("latin-1") if isinstance(counts, bytes) else counts
        try:
            runs = rle_string_counts(text)
        except ValueError as exc:
            raise DatasetError(where, f"compressed RLE {text[:40]!r} is not valid ({exc})", SKIP_HINT) from exc
    else:
        raise DatasetError(where, f"RLE counts are a {type(counts).__name__}, not a list or a string", SKIP_HINT)
    total = sum(runs)
    if total != height * width:
        kind = "compressed RLE" if not isinstance(counts, list) else "RLE"
        raise DatasetError(where, f"{kind} counts sum to {total}, not {width} x {height} = {height * width}", SKIP_HINT)
    if isinstance(counts, list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return {"size": size, "counts": counts}


def _check_polygons(segmentation: list[Any], height: int, width: int, where: str) -> None:
    if not segmentation:
        raise DatasetError(where, "segmentation is an empty polygon list", SKIP_HINT)
    for k, poly in enumerate(segmentation):
        if not isinstance(poly, list) or len(poly) % 2 or not all(_is_number(v) for v in poly):
            raise DatasetError(where, f"polygon {k} is not a flat list of x, y numbers", SKIP_HINT)
        if len(poly) < 6:
            raise DatasetError(where, f"polygon {k} has {len(poly) // 2} points (needs 3)", SKIP_HINT)
        xs, ys = np.asarray(poly[0::2]), np.asarray(poly[1::2])
        # A few pixels past the border is normal; images away costs rasterising time for nothing.
        if (xs < -width).any() or (xs > 2 * width).any() or (ys < -height).any() or (ys > 2 * height).any():
            raise DatasetError(where, f"polygon {k} lies far outside the {width}x{height} image", SKIP_HINT)


def segmentation_to_mask(segmentation: Any, height: int, width: int, where: str) -> np.ndarray:
    """Decode a COCO ``segmentation`` (polygons, uncompressed or compressed RLE) to a 0/1 uint8 mask.

    Args:
        segmentation: The annotation's ``segmentation`` value.
        height: Image height.
        width: Image width.
        where: Names the annotation in errors (file and annotation id).

    Raises:
        DatasetError: A polygon with fewer than 3 points, non-numeric coordinates or points more
            than an image size beyond the border; an RLE whose size is not the image's, whose
            counts are not run lengths adding up to ``height * width``, or whose compressed string
            is malformed.

    >>> segmentation_to_mask([[1, 1, 4, 1, 4, 3, 1, 3]], 4, 6, "example")
    array([[0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0, 0],
           [0, 1, 1, 1, 0, 0],
           [0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        _check_polygons(segmentation, height, width, where)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        rle = _checked_rle(segmentation, height, width, where)
    else:
        raise DatasetError(where, "segmentation is neither polygons nor an RLE", SKIP_HINT)
    with warnings.catch_warnings():
        # pycocotools' decode trips a numpy 2 copy-keyword deprecation that is not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = mask_utils.decode(rle)
    if decoded.ndim == 3:
        decoded = decoded.max(axis=2)
    return (decoded > 0).astype(np.uint8)

"""ReasonSeg in its original layout: ``<root>/{train,val,test}/<stem>.jpg`` beside ``<stem>.json``.

Each JSON holds ``text`` (a list of queries; evaluation uses the first), ``is_sentence`` (long
vs short query) and ``shapes`` (``{"label", "points"}`` polygons). Masks are rasterised exactly as
the benchmark's reference evaluation does, so scores computed here compare with published ones:

1. shapes labelled ``flag`` (any case) are dropped;
2. the rest are sorted by filled area, largest first (``numpy.argsort`` of the areas, reversed);
3. each is drawn with ``cv2.polylines`` (closed, thickness 1) then ``cv2.fillPoly``, its points
   cast to int32 (truncation toward zero);
4. the value drawn is 255 (ignore) when ``"ignore"`` is in the lower-cased label, else 1.

Later (smaller) polygons overwrite earlier ones, so a small ignore region inside a target stays
255 and a small target inside an ignore region stays 1.

Index building lists the split folder and reads the small JSONs (for the query and its kind, and
to check the polygons); images are decoded and masks rasterised only in ``ds[i]``.

Bad data and ``strict``: a missing split folder always raises :class:`DatasetError`. An image
without its JSON, a JSON without its image, a JSON that does not parse (or nests too deeply to),
lacks ``text`` / ``shapes`` or has an ``is_sentence`` that is not ``true`` / ``false``, and a
polygon with fewer than 2 points, points that are not pairs of JSON numbers (strings and booleans
are refused) or coordinates beyond +-1,000,000 are found while indexing: ``strict=True``
(default) raises on the first, ``strict=False`` skips them with one warning. What needs the
image is found only by reading it: an image that does not decode or whose header claims more
pixels than the limit (:mod:`segzero_env.datasets.images`), and a polygon reaching more than one
image width or height beyond the border (a few pixels past it are normal and kept). ``ds[i]``
raises then, in either mode, unless ``verify=True`` read every image while indexing (slow; what
``segzero data check`` does), in which case ``strict=False`` skips those too. Annotations that
are not UTF-8 are read as cp1252, as the reference evaluation does, with one
:class:`~segzero_env.datasets.errors.DatasetEncodingWarning` listing how many. A 2-point polygon is
drawn as the reference draws it, a line (outline plus fill), with a
:class:`~segzero_env.datasets.errors.DegeneratePolygonWarning` naming the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segzero_env.datasets.errors import (
    SKIP_HINT,
    DatasetEncodingWarning,
    DatasetError,
    DegeneratePolygonWarning,
    SkipLog,
    paused_gc,
    read_json_with_encoding,
)
from segzero_env.datasets.images import read_image
from segzero_env.datasets.indexed import IndexedDataset
from segzero_env.datasets.paths import resolve_root
from segzero_env.types import Sample

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IGNORE_VALUE = 255
TARGET_VALUE = 1
MAX_COORDINATE = 1_000_000
"""Polygon coordinates beyond +-this are refused while indexing (drawing them costs time in proportion)."""
_JSON_NUMBERS = {int, float}  # exact types: JSON booleans and strings are not coordinates


def rasterize_shapes(shapes: Sequence[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Rasterise ReasonSeg ``shapes`` into an ``height x width`` uint8 mask of 0 / 1 / 255.

    Follows the reference rules listed in the module docstring. ``shapes`` must already be
    validated (see :func:`check_shapes` and :func:`check_within_image`).

    >>> shapes = [{"label": "target", "points": [[1, 1], [4, 1], [4, 3], [1, 3]]},
    ...           {"label": "ignore", "points": [[2.9, 2], [3, 2], [3, 2.7]]},
    ...           {"label": "flag", "points": [[0, 0], [5, 0], [5, 4]]}]
    >>> rasterize_shapes(shapes, 5, 6)
    array([[  0,   0,   0,   0,   0,   0],
           [  0,   1,   1,   1,   1,   0],
           [  0,   1, 255, 255,   1,   0],
           [  0,   1,   1,   1,   1,   0],
           [  0,   0,   0,   0,   0,   0]], dtype=uint8)
    """
    polygons: list[tuple[int, np.ndarray]] = []
    for shape in shapes:
        label = str(shape["label"]).lower()
        if label == "flag":
            continue
        points = np.asarray(shape["points"], dtype=np.float64).astype(np.int32).reshape(1, -1, 2)
        polygons.append((IGNORE_VALUE if "ignore" in label else TARGET_VALUE, points))
    mask = np.zeros((height, width), dtype=np.uint8)
    if not polygons:
        return mask
    areas = []
    for _, points in polygons:
        cv2.polylines(mask, points, True, 1, 1)
        cv2.fillPoly(mask, points, 1)
        areas.append(int(mask.sum(dtype=np.int64)))
        mask[:] = 0
    # The reference orders by argsort reversed; ties keep that exact order, so reuse it.
    for index in np.argsort(areas)[::-1]:
        value, points = polygons[int(index)]
        cv2.polylines(mask, points, True, value, 1)
        cv2.fillPoly(mask, points, value)
    return mask


def check_shapes(shapes: object, path: str | os.PathLike[str]) -> None:
    """Raise :class:`DatasetError` unless ``shapes`` is a list of drawable labelled polygons.

    ``flag`` shapes are not drawn, so they are not checked beyond having a label.
    """
    if not isinstance(shapes, list):
        raise DatasetError(path, "'shapes' is missing or not a list", "each annotation needs a list of polygons")
    for k, shape in enumerate(shapes):
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
            raise DatasetError(path, f"shape {k} has no string 'label'", "give every shape a label")
        if shape["label"].lower() == "flag":
            continue
        points = shape.get("points")
        name = f"shape {k} ({shape['label']!r})"
        try:
            # One pass in C over every coordinate's type (strings and booleans would convert silently),
            # then one numpy conversion for the shape and values: index time reads all polygons.
            kinds = set(map(type, chain.from_iterable(points))) if isinstance(points, list) else {None}
            array = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError):
            kinds, array = {None}, np.zeros(0)
        malformed = array.size and (array.ndim != 2 or array.shape[1] != 2 or not np.isfinite(array).all())
        if not kinds <= _JSON_NUMBERS or malformed:
            raise DatasetError(path, f"{name} points are not [x, y] number pairs", SKIP_HINT)
        if len(array) < 2:
            raise DatasetError(path, f"{name} is a polygon with {len(array)} points (needs 2)", SKIP_HINT)
        if len(array) == 2:
            # LISA's rasteriser draws it (a line: outline plus fill); masks must match the benchmark's.
            warnings.warn(
                f"{path}: {name} has 2 points; drawn as a line, as the reference rasteriser does",
                DegeneratePolygonWarning,
                stacklevel=2,
            )
        if (np.abs(array) > MAX_COORDINATE).any():
            raise DatasetError(path, f"{name} has coordinates beyond +-{MAX_COORDINATE:,}", SKIP_HINT)


def check_within_image(shapes: Sequence[dict[str, Any]], height: int, width: int, path: str) -> None:
    """Raise :class:`DatasetError` when a drawn polygon reaches more than one image size beyond the border.

    Annotators' points a few pixels past the border are normal and drawn clipped, as the reference
    does; a point several image widths away is an error (and drawing it takes time in proportion).
    """
    for k, shape in enumerate(shapes):
        if str(shape["label"]).lower() == "flag":
            continue
        array = np.asarray(shape["points"], dtype=np.float64)
        xs, ys = array[:, 0], array[:, 1]
        if (xs < -width).any() or (xs > 2 * width).any() or (ys < -height).any() or (ys > 2 * height).any():
            raise DatasetError(
                path, f"shape {k} ({shape['label']!r}) reaches far outside the {width}x{height} image", SKIP_HINT
            )


def read_annotation(
    path: str | os.PathLike[str],
) -> tuple[list[str], str | None, list[dict[str, Any]], str]:
    """Read and check one ReasonSeg JSON.

    Returns:
        Its texts, query kind (``"short"`` / ``"long"`` / ``None``), shapes, and the encoding that
        read it (``"utf-8"`` or ``"cp1252"``).
    """
    data, encoding = read_json_with_encoding(path)
    if not isinstance(data, dict):
        raise DatasetError(path, "top level is not a JSON object", "expected keys 'text', 'is_sentence', 'shapes'")
    texts = data.get("text")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise DatasetError(path, "'text' is missing or not a non-empty list of strings", "add the query text")
    is_sentence = data.get("is_sentence")
    if is_sentence is not None and not isinstance(is_sentence, bool):
        raise DatasetError(path, f"'is_sentence' is {is_sentence!r}, not true or false", "write a JSON boolean")
    kind = None if is_sentence is None else ("long" if is_sentence else "short")
    shapes = data.get("shapes")
    check_shapes(shapes, path)
    return texts, kind, shapes, encoding


@dataclass(frozen=True)
class _Entry:
    sample_id: str
    image_path: str
    json_path: str
    text_index: int
    num_texts: int
    query: str
    query_kind: str | None


def list_splits(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Split folders present under the ReasonSeg ``root``."""
    base = resolve_root(root, "reasonseg", ("reasonseg", "ReasonSeg"))
    return [s for s in SPLITS if (base / s).is_dir()]


def _split_dir(root: str | os.PathLike[str] | None, split: str) -> Path:
    base = resolve_root(root, "reasonseg", ("reasonseg", "ReasonSeg"), lambda p: (p / split).is_dir())
    if (base / split).is_dir():
        return base / split
    # Pointing straight at a split folder is accepted when its name is the split asked for.
    if base.name == split:
        return base
    found = [s for s in SPLITS if (base / s).is_dir()]
    raise DatasetError(
        base / split,
        f"split folder for {split!r} not found" + (f" (found: {', '.join(found)})" if found else ""),
        "pass the folder that holds train/ val/ test/ as root, and one of its splits as split",
    )


class ReasonSegDataset(IndexedDataset):
    """ReasonSeg (LISA layout), one sample per image (or per text with ``all_texts=True``).

    Samples are sorted by file stem.

    Args:
        root: Folder holding ``train/ val/ test/`` (or the split folder itself); default: see
            :mod:`segzero_env.datasets.paths`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        all_texts: Every text of an image becomes its own sample with id ``"<stem>_<k>"``
            (default: ``text[0]`` only, id ``"<stem>"``, as the benchmark evaluates).
        strict: Raise on the first bad sample found while indexing (else skip, warn once).
        verify: Also decode every image while indexing, so corrupt images are found then.
    """

    has_masks = True

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "val",
        *,
        all_texts: bool = False,
        strict: bool = True,
        verify: bool = False,
    ) -> None:
        self.name = "reasonseg"
        self.split = split
        self.folder = _split_dir(root, split)
        self.skip_log = SkipLog(f"reasonseg {split} ({self.folder})", strict=strict)
        self.cp1252_files: list[str] = []
        self._entries = self._build_index(all_texts, verify)
        self._set_ids([e.sample_id for e in self._entries])
        self.skip_log.warn_once(len(self._entries))
        if self.cp1252_files:
            n = len(self.cp1252_files)
            warnings.warn(
                f"reasonseg {split}: {n} annotation file{'s are' if n > 1 else ' is'} not UTF-8 and "
                f"{'were' if n > 1 else 'was'} read as cp1252 (first: {self.cp1252_files[0]}); "
                "check their text and re-save them as UTF-8 (the list is in ds.cp1252_files)",
                DatasetEncodingWarning,
                stacklevel=2,
            )

    def _build_index(self, all_texts: bool, verify: bool) -> list[_Entry]:
        images: dict[str, str] = {}
        jsons: set[str] = set()
        with os.scandir(self.folder) as it:
            for item in it:
                stem, suffix = os.path.splitext(item.name)
                if suffix.lower() in IMAGE_SUFFIXES:
                    images[stem] = item.name
                elif suffix.lower() == ".json":
                    jsons.add(stem)
        entries: list[_Entry] = []
        with paused_gc():
            self._add_entries(entries, images, jsons, all_texts, verify)
        return entries

    def _add_entries(
        self, entries: list[_Entry], images: dict[str, str], jsons: set[str], all_texts: bool, verify: bool
    ) -> None:
        for stem in sorted(set(images) | jsons):
            json_path = str(self.folder / f"{stem}.json")
            if stem not in images:
                self.skip_log.record(DatasetError(json_path, f"annotation has no image {stem}.jpg", SKIP_HINT))
                continue
            image_path = str(self.folder / images[stem])
            if stem not in jsons:
                self.skip_log.record(DatasetError(image_path, f"image has no annotation {stem}.json", SKIP_HINT))
                continue
            try:
                texts, kind, shapes, encoding = read_annotation(json_path)
                if verify:
                    image = read_image(image_path)
                    check_within_image(shapes, image.shape[0], image.shape[1], json_path)
            except DatasetError as exc:
                self.skip_log.record(exc)
                continue
            if encoding != "utf-8":
                self.cp1252_files.append(json_path)
            chosen = range(len(texts)) if all_texts else range(1)
            for k in chosen:
                sample_id = f"{stem}_{k}" if all_texts else stem
                entries.append(_Entry(sample_id, image_path, json_path, k, len(texts), texts[k], kind))

    def __getitem__(self, index: int) -> Sample:
        """Decode the image and rasterise the mask of sample ``index``."""
        entry = self._entries[index]
        image = read_image(entry.image_path)
        _, _, shapes, _ = read_annotation(entry.json_path)
        check_within_image(shapes, image.shape[0], image.shape[1], entry.json_path)
        mask = rasterize_shapes(shapes, image.shape[0], image.shape[1])
        return Sample(
            sample_id=entry.sample_id,
            image=image,
            query=entry.query,
            mask=mask,
            query_kind=entry.query_kind,
            meta={
                "image_path": entry.image_path,
                "json_path": entry.json_path,
                "text_index": entry.text_index,
                "num_texts": entry.num_texts,
            },
        )

    @property
    def query_kinds(self) -> list[str | None]:
        """Every sample's query kind, in index order, without decoding anything."""
        return [e.query_kind for e in self._entries]


def load_reasonseg(root: str | os.PathLike[str] | None = None, split: str = "val", **kwargs: Any) -> ReasonSegDataset:
    """Build the dataset behind ``load("reasonseg", ...)``; see :class:`ReasonSegDataset`."""
    return ReasonSegDataset(root, split, **kwargs)

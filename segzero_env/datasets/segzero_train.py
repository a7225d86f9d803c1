"""Seg-Zero's RL training set (``refCOCOg_9k_840`` schema), read through ``datasets``.

Columns: ``id``, ``problem`` (the referring expression), ``solution`` (the ground truth as text),
``image`` (resized to 840 x 840), ``img_height`` and ``img_width`` (the original size). The
ground truth is in the 840 frame and comes in two forms, both read:

- ``<box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points>``;
- a JSON list ``[{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}, ...]`` (``bbox`` /
  ``points_1`` / ``points_2`` keys are read too).

Samples are in the ORIGINAL frame, like every other source: the image is resized back from 840 x
840 to ``img_width x img_height`` (PIL bilinear), and box and points are mapped with
``x * W / 840`` and ``y * H / 840`` rounded half up (``floor(v + 0.5)``,
:func:`segzero_env.geometry.to_original_frame_box`). ``gt_box`` / ``gt_points`` are the first
object's; ``meta["gt_objects"]`` lists every object as ``(box, points)``. There is no mask
(``mask=None``, ``has_masks=False``): an env on this set cannot compute mask IoU, so its reward
is carried by the box and point terms (the ``seg-zero`` reward preset, used by ``RefCOCOg9k-v0``).
``sample_id`` is the ``id`` column.

The ground-truth strings are parsed while indexing (fast: strings only), so a malformed
``solution``, or an original size over the pixel limit (:mod:`segzero_env.datasets.images`), is
found then: ``strict=False`` skips it with one warning. An image that does not decode, or whose
header claims more pixels than the limit, raises in ``ds[i]`` unless ``verify=True`` decoded
every row while indexing.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import numpy as np

from segzero_env.datasets.errors import SKIP_HINT, DatasetError
from segzero_env.datasets.images import check_image_size
from segzero_env.datasets.reasonseg_hf import HFTableDataset, column_values, image_to_rgb, undecoded_images
from segzero_env.geometry import to_original_frame_box, to_original_frame_point
from segzero_env.types import Box, Point, Sample

TRAIN_COLUMNS = ("id", "problem", "solution", "image", "img_height", "img_width")
GT_IMAGE_SIZE = 840
"""Side of the square frame the ``solution`` coordinates live in."""

_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
_PAIR = rf"\({_NUMBER},{_NUMBER}\)"
_TAGGED = re.compile(rf"<box>\s*{_PAIR}\s*,\s*{_PAIR}\s*</box>\s*<points>\s*{_PAIR}\s*,\s*{_PAIR}\s*</points>", re.S)

GtObject = tuple[Box, tuple[Point, ...]]


def _numbers(value: Any, n: int, what: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise ValueError(f"{what} is not a list of {n} numbers")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{what} holds {v!r}, not a finite number")
        out.append(float(v))
    return out


def parse_solution(solution: str) -> list[GtObject]:
    """Read the ground-truth objects (840 frame) from a training-set ``solution`` string.

    This reads the dataset's ground-truth notation, not policy replies (those go through
    :func:`segzero_env.parsing.parse_reply`).

    Raises:
        ValueError: The string is in neither form.

    >>> parse_solution("<box>(10,20),(110,220)</box><points>(30,40),(50,60)</points>")
    [((10.0, 20.0, 110.0, 220.0), ((30.0, 40.0), (50.0, 60.0)))]
    >>> parse_solution('[{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}]')
    [((1.0, 2.0, 3.0, 4.0), ((2.0, 3.0),))]
    """
    match = _TAGGED.fullmatch(solution.strip())
    if match:
        v = [float(g) for g in match.groups()]
        return [((v[0], v[1], v[2], v[3]), ((v[4], v[5]), (v[6], v[7])))]
    try:
        data = json.loads(solution)
    except json.JSONDecodeError as exc:
        raise ValueError("is neither '<box>(x1,y1),(x2,y2)</box><points>...' nor a JSON list") from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise ValueError("JSON ground truth is not a non-empty list of objects")
    objects: list[GtObject] = []
    for k, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise ValueError(f"object {k} is not a JSON object")
        box_value = obj.get("bbox_2d", obj.get("bbox"))
        x1, y1, x2, y2 = _numbers(box_value, 4, f"object {k} box")
        keys = [key for key in ("point_2d", "points_1", "points_2") if key in obj]
        points = tuple(tuple(_numbers(obj[key], 2, f"object {k} {key}")) for key in keys)
        objects.append(((x1, y1, x2, y2), points))  # type: ignore[arg-type]
    return objects


def to_original(objects: list[GtObject], width: int, height: int, frame: int = GT_IMAGE_SIZE) -> list[GtObject]:
    """Map ground-truth objects from the ``frame x frame`` square (840) to the original ``width x height`` image.

    >>> to_original([((0.0, 0.0, 840.0, 420.0), ((1.0, 1.0),))], 420, 1000)
    [((0, 0, 420, 500), ((1, 1),))]
    """
    return [
        (
            to_original_frame_box(box, frame, width, height),
            tuple(to_original_frame_point(p, frame, width, height) for p in points),
        )
        for box, points in objects
    ]


class SegZeroTrainDataset(HFTableDataset):
    """Seg-Zero's training set: query, image and GT box / points, no mask.

    Samples are in row order; ids are the ``id`` column.

    Args:
        root: Folder, parquet file or hub id (e.g. ``Ricky06662/refCOCOg_9k_840`` when online);
            default: ``refCOCOg_9k_840`` or ``segzero_train`` under the data folder.
        split: Split (the published set has ``"train"`` only, read whatever is asked when it is alone).
        hf_split: Split name inside the table, overriding that choice.
        cache_dir: ``datasets`` cache folder.
        gt_image_size: Side of the square frame of the stored images and ``solution`` coordinates.
        strict: Raise on the first bad row found while indexing (else skip, warn once).
        verify: Decode every image while indexing.
    """

    has_masks = False
    _per_sample = ("_rows", "_ids", "_queries", "_sizes", "_objects")

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        *,
        hf_split: str | None = None,
        cache_dir: str | None = None,
        gt_image_size: int = GT_IMAGE_SIZE,
        strict: bool = True,
        verify: bool = False,
    ) -> None:
        self.name = "segzero-train"
        self.gt_image_size = gt_image_size
        self._open_table(root, split, ("refCOCOg_9k_840", "segzero_train"), TRAIN_COLUMNS, hf_split, cache_dir, strict)
        self._image_view = undecoded_images(self._table, ["image"])
        cols = column_values(self._table, ["id", "problem", "solution", "img_height", "img_width"])
        self._rows: list[int] = []
        self._ids: list[str] = []
        self._queries: list[str] = []
        self._sizes: list[tuple[int, int]] = []
        self._objects: list[list[GtObject]] = []
        for row in range(len(cols["id"])):
            where = f"{self.source} row {row} (id {cols['id'][row]})"
            try:
                query, size, objects = self._check_row(cols, row, where, gt_image_size)
            except DatasetError as exc:
                self.skip_log.record(exc)
                continue
            self._rows.append(row)
            self._ids.append(str(cols["id"][row]))
            self._queries.append(query)
            self._sizes.append(size)
            self._objects.append(objects)
        self._finish_index(verify)

    @staticmethod
    def _check_row(
        cols: dict[str, list[Any]], row: int, where: str, frame: int
    ) -> tuple[str, tuple[int, int], list[GtObject]]:
        query = cols["problem"][row]
        if not isinstance(query, str) or not query.strip():
            raise DatasetError(where, "'problem' (the query) is empty", SKIP_HINT)
        height, width = cols["img_height"][row], cols["img_width"][row]
        if not isinstance(height, int) or not isinstance(width, int) or height <= 0 or width <= 0:
            raise DatasetError(where, f"img_height / img_width are {height!r} / {width!r}", SKIP_HINT)
        check_image_size(where, width, height, "img_width x img_height claim")
        solution = cols["solution"][row]
        try:
            objects = parse_solution(solution if isinstance(solution, str) else "")
        except ValueError as exc:
            raise DatasetError(where, f"'solution' {str(solution)[:60]!r} {exc}", SKIP_HINT) from exc
        return query, (height, width), to_original(objects, width, height, frame)

    def __getitem__(self, index: int) -> Sample:
        """Decode the image of sample ``index`` and resize it back to the original size."""
        from PIL import Image

        row = self._rows[index]
        height, width = self._sizes[index]
        where = f"{self.source} row {row} (id {self._ids[index]})"
        stored = image_to_rgb(self._image_view[row]["image"], where)
        side = self.gt_image_size
        if stored.shape[:2] != (side, side):
            raise DatasetError(
                where, f"image is {stored.shape[1]}x{stored.shape[0]}, not {side}x{side}", "pass gt_image_size="
            )
        image = np.asarray(Image.fromarray(stored).resize((width, height), Image.BILINEAR))
        objects = self._objects[index]
        box, points = objects[0]
        return Sample(
            sample_id=self._ids[index],
            image=image,
            query=self._queries[index],
            mask=None,
            gt_box=box,
            gt_points=points or None,
            meta={"row": row, "gt_objects": objects, "gt_image_size": side},
        )


def load_segzero_train(
    root: str | os.PathLike[str] | None = None, split: str = "train", **kwargs: Any
) -> SegZeroTrainDataset:
    """Build the dataset behind ``load("segzero-train", ...)``; see :class:`SegZeroTrainDataset`."""
    return SegZeroTrainDataset(root, split, **kwargs)

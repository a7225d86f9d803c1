"""Seg-Zero's Hugging Face copies of ReasonSeg (``ReasonSeg_val``, ``ReasonSeg_test``), read through ``datasets``.

Columns: ``image`` (the original image), ``text`` (the query), ``mask`` (``H x W`` bool),
``image_id``, ``ann_id``, ``img_height``, ``img_width``. Both copies store their rows under the
split ``"test"``; the folder (or hub id) says which benchmark split it is. When the split asked
for is absent and the copy holds one split only, that split is read (``hf_split`` forces one).

Masks in these copies have no ignore value: ignore regions were merged into the target when they
were made. The samples' masks are therefore 0 / 1 only, and the LISA metric computed on them
equals Seg-Zero's variant (ignore counted as target). Use the ``reasonseg`` loader on the
original files for LISA-definition numbers. ``query_kind`` is ``None`` unless the copy has an
``is_sentence`` column.

``root`` is a local folder (a ``save_to_disk`` folder, or parquet files as a hub snapshot lays
them out, e.g. ``data/test-00000-of-00001.parquet``), a single parquet file, or, when online, a
hub dataset id such as ``Ricky06662/ReasonSeg_val``. Parquet is converted into the ``datasets``
cache once (``cache_dir`` chooses where). Sample ids are ``image_id`` when those are unique
(they are the ReasonSeg file stems, so ids match the ``reasonseg`` loader), else
``"<image_id>_<ann_id>"``.

Bad data: a missing folder, an unreadable table or missing columns always raise
:class:`DatasetError`; rows with an empty query or an ``is_sentence`` that is not a boolean are
skipped at index time under ``strict=False``; an image that does not decode or whose header claims
more pixels than the limit (:mod:`segzero_env.datasets.images`), and a mask whose size is not the
image's, raise in ``ds[i]`` (or while indexing with ``verify=True``, which ``strict=False`` then
skips).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segzero_env.datasets.errors import SKIP_HINT, DatasetError, SkipLog
from segzero_env.datasets.images import header_size_within_limit
from segzero_env.datasets.indexed import IndexedDataset
from segzero_env.datasets.paths import resolve_root
from segzero_env.types import Sample

REASONSEG_HF_COLUMNS = ("image", "text", "mask", "image_id", "ann_id", "img_height", "img_width")


def _looks_like_hub_id(root: str) -> bool:
    parts = root.split("/")
    return len(parts) == 2 and all(parts) and not root.startswith((".", "~")) and os.sep not in root.replace("/", "")


def _read_any(root: Path | str, cache_dir: str | None) -> Any:
    """Open a save_to_disk folder, parquet files, or a hub id; return a Dataset or DatasetDict."""
    import datasets

    if isinstance(root, Path):
        if root.is_file() and root.suffix == ".parquet":
            return datasets.load_dataset("parquet", data_files={"train": str(root)}, cache_dir=cache_dir)
        if (root / "state.json").is_file() or (root / "dataset_dict.json").is_file():
            return datasets.load_from_disk(str(root))
        if not any(root.rglob("*.parquet")) and not any(root.rglob("*.arrow")):
            raise DatasetError(root, "holds no parquet or arrow files", "point root at the downloaded dataset folder")
    return datasets.load_dataset(str(root), cache_dir=cache_dir)


def open_hf_table(
    root: str | os.PathLike[str] | None,
    split: str,
    dataset: str,
    subfolders: Sequence[str],
    required: Sequence[str],
    hf_split: str | None = None,
    cache_dir: str | None = None,
) -> tuple[Any, str, str]:
    """Open one split of a ``datasets`` table from a folder, a parquet file or a hub id.

    Args:
        root: Folder, parquet file or hub id; ``None`` looks under :func:`~segzero_env.datasets.paths.data_dir`.
        split: Split asked for.
        dataset: Dataset name, for messages.
        subfolders: Sub-folders of the data folder tried when ``root`` is ``None``.
        required: Columns the table must have.
        hf_split: Split name inside the table, overriding the choice described in the module docstring.
        cache_dir: ``datasets`` cache folder for parquet conversion.

    Returns:
        ``(table, split name used, description of the source)``.
    """
    import datasets

    if root is not None and not Path(root).expanduser().exists() and _looks_like_hub_id(str(root)):
        source: Path | str = str(root)
    else:
        source = resolve_root(root, dataset, subfolders, lambda p: any(p.iterdir()))
    try:
        opened = _read_any(source, cache_dir)
    except DatasetError:
        raise
    except Exception as exc:  # datasets raises many types (FileNotFoundError, ConnectionError, DatasetNotFoundError)
        fix = (
            "download it first (e.g. 'hf download --repo-type dataset ID --local-dir DIR') and pass the folder as root"
            if isinstance(source, str)
            else "check the folder holds the dataset's parquet files or a save_to_disk copy"
        )
        raise DatasetError(str(source), f"cannot be opened with datasets ({type(exc).__name__}: {exc})", fix) from exc
    if isinstance(opened, datasets.DatasetDict):
        names = list(opened)
        chosen = hf_split or (split if split in opened else (names[0] if len(names) == 1 else None))
        if chosen not in opened:
            problem = f"has no split {chosen or split!r} (it has: {', '.join(names)})"
            raise DatasetError(str(source), problem, "pass hf_split= one of those")
        table = opened[chosen]
    else:
        table, chosen = opened, hf_split or split
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise DatasetError(
            str(source),
            f"lacks column(s) {', '.join(missing)} (has: {', '.join(table.column_names)})",
            f"is this a {dataset} copy?",
        )
    return table, chosen, str(source)


def column_values(table: Any, names: Sequence[str]) -> dict[str, list[Any]]:
    """Read whole columns as Python lists straight from Arrow (no image or mask decoding)."""
    view = table.select_columns(list(names)).with_format("arrow")[:]
    return {name: view.column(name).to_pylist() for name in names}


def undecoded_images(table: Any, columns: Sequence[str]) -> Any:
    """A view of ``columns`` whose ``image`` column gives the stored bytes, for :func:`image_to_rgb` to decode.

    ``datasets`` would decode images with Pillow before the pixel limit could be checked.
    """
    import datasets

    return table.select_columns(list(columns)).cast_column("image", datasets.Image(decode=False))


def image_to_rgb(value: Any, where: str) -> np.ndarray:
    """Decode a ``datasets`` image (``{"bytes", "path"}``, PIL image or array) into ``H x W x 3`` uint8.

    Encoded images are held to the pixel limit (:mod:`segzero_env.datasets.images`) from their
    header, before any decoding.

    Raises:
        DatasetError: The image does not decode, is over the pixel limit, or is not ``H x W x 3``.
    """
    from PIL import Image

    try:
        if isinstance(value, dict):
            data = value.get("bytes")
            if not data:
                with open(value["path"], "rb") as f:
                    data = f.read()
            header_size_within_limit(where, data[: 1 << 20])
            with warnings.catch_warnings():
                # The pixel limit above already applies; Pillow's own warning would only repeat it.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                value = Image.open(io.BytesIO(data))
                value.load()
        if isinstance(value, Image.Image):
            return np.asarray(value.convert("RGB"))
        array = np.asarray(value)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for damaged data
        raise DatasetError(where, f"image does not decode ({type(exc).__name__}: {exc})", "re-download it") from exc
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise DatasetError(where, f"image has shape {array.shape}, expected H x W x 3", "re-download the dataset")
    return np.ascontiguousarray(array[:, :, :3].astype(np.uint8))


class HFTableDataset(IndexedDataset):
    """Base for the loaders that read one row per sample from a ``datasets`` table.

    A subclass sets ``name``, calls :meth:`_open_table` first, fills the per-sample lists named
    in ``_per_sample`` (parallel: one value per kept row, ``_rows`` and ``_ids`` among them),
    then calls :meth:`_finish_index`.
    """

    _per_sample: tuple[str, ...] = ("_rows", "_ids")
    _rows: list[int]

    def _open_table(
        self,
        root: str | os.PathLike[str] | None,
        split: str,
        subfolders: Sequence[str],
        required: Sequence[str],
        hf_split: str | None,
        cache_dir: str | None,
        strict: bool,
    ) -> None:
        """Open the table (see :func:`open_hf_table`) and start the skip log."""
        self.split = split
        self._table, self.hf_split, self.source = open_hf_table(
            root, split, self.name, subfolders, required, hf_split, cache_dir
        )
        self.skip_log = SkipLog(f"{self.name} {split} ({self.source})", strict=strict)

    def _finish_index(self, verify: bool) -> None:
        """Decode every kept row when ``verify`` (skipping or raising per ``strict``), then fix the ids."""
        if verify:
            self._verify()
        self._set_ids(self._ids)
        self.skip_log.warn_once(len(self._ids))

    def _verify(self) -> None:
        keep = []
        for i in range(len(self._rows)):
            try:
                self[i]  # type: ignore[index]
                keep.append(i)
            except DatasetError as exc:
                self.skip_log.record(exc)
        for name in self._per_sample:
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in keep])


def _default_subfolders(split: str) -> tuple[str, ...]:
    return (f"ReasonSeg_{split}", f"reasonseg_hf/{split}")


class ReasonSegHFDataset(HFTableDataset):
    """Seg-Zero's ReasonSeg copy (one row per sample), decoded lazily through ``datasets``.

    Args:
        root: Folder, parquet file or hub id (see the module docstring); default: ``ReasonSeg_<split>``
            under :func:`~segzero_env.datasets.paths.data_dir`.
        split: Benchmark split (``"val"`` / ``"test"``).
        hf_split: Split name inside the copy (default: ``split`` if present, else its only split).
        cache_dir: ``datasets`` cache folder.
        strict: Raise on the first bad row found while indexing (else skip, warn once).
        verify: Decode every row while indexing.
    """

    has_masks = True
    _per_sample = ("_rows", "_ids", "_queries", "_kinds")

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "val",
        *,
        hf_split: str | None = None,
        cache_dir: str | None = None,
        strict: bool = True,
        verify: bool = False,
    ) -> None:
        self.name = "reasonseg-hf"
        self._open_table(root, split, _default_subfolders(split), REASONSEG_HF_COLUMNS, hf_split, cache_dir, strict)
        # Views built once: a row read decodes only the columns it needs.
        self._image_view = undecoded_images(self._table, ["image", "img_height", "img_width"])
        self._mask_view = self._table.select_columns(["mask"]).with_format("numpy")
        extra = ["is_sentence"] if "is_sentence" in self._table.column_names else []
        cols = column_values(self._table, ["image_id", "ann_id", "text", *extra])
        image_ids = [str(v) for v in cols["image_id"]]
        unique = len(set(image_ids)) == len(image_ids)
        self._rows: list[int] = []
        self._ids: list[str] = []
        self._queries: list[str] = []
        self._kinds: list[str | None] = []
        for row, (image_id, ann_id, text) in enumerate(zip(image_ids, cols["ann_id"], cols["text"], strict=True)):
            query = text[0] if isinstance(text, list) and text else text
            if not isinstance(query, str) or not query.strip():
                self.skip_log.record(DatasetError(f"{self.source} row {row}", "has an empty text", SKIP_HINT))
                continue
            is_sentence = cols["is_sentence"][row] if extra else None
            if is_sentence is not None and not isinstance(is_sentence, bool):
                problem = f"'is_sentence' is {is_sentence!r}, not true or false"
                self.skip_log.record(DatasetError(f"{self.source} row {row}", problem, SKIP_HINT))
                continue
            self._rows.append(row)
            self._ids.append(image_id if unique else f"{image_id}_{ann_id}")
            self._queries.append(query)
            self._kinds.append(None if is_sentence is None else ("long" if is_sentence else "short"))
        self._finish_index(verify)

    def __getitem__(self, index: int) -> Sample:
        """Decode the image and mask of sample ``index``."""
        row = self._rows[index]
        where = f"{self.source} row {row} ({self._ids[index]})"
        record = self._image_view[row]
        image = image_to_rgb(record["image"], where)
        size = (record["img_height"], record["img_width"])
        if not all(type(v) is int and v > 0 for v in size):
            raise DatasetError(where, f"img_height / img_width are {size[0]!r} / {size[1]!r}", "re-download it")
        if image.shape[:2] != size:
            raise DatasetError(where, f"image is {image.shape[:2]}, img_height/img_width say {size}", "re-download it")
        mask_value = self._mask_view[row]["mask"]
        try:
            mask = np.asarray(mask_value if not hasattr(mask_value, "convert") else mask_value.convert("L"))
            if mask.dtype == object:  # ragged rows come back as an array of arrays
                mask = np.stack([np.asarray(r) for r in mask])
        except ValueError as exc:
            raise DatasetError(where, f"mask is not a rectangular array ({exc})", "re-download the dataset") from exc
        if mask.shape != image.shape[:2]:
            raise DatasetError(where, f"mask is {mask.shape}, image is {image.shape[:2]}", "re-download the dataset")
        return Sample(
            sample_id=self._ids[index],
            image=image,
            query=self._queries[index],
            mask=(mask > 0).astype(np.uint8),
            query_kind=self._kinds[index],
            meta={"row": row, "ignore_as_target": True},
        )


def list_hf_splits(root: str | os.PathLike[str], cache_dir: str | None = None) -> list[str]:
    """List the splits stored in a ``datasets`` copy (a single ``"test"`` split for Seg-Zero's ReasonSeg copies)."""
    import datasets

    path = Path(root).expanduser()
    if not path.exists() and not _looks_like_hub_id(str(root)):
        raise DatasetError(path, "does not exist", "check the path")
    opened = _read_any(path if path.exists() else str(root), cache_dir)
    return list(opened) if isinstance(opened, datasets.DatasetDict) else ["train"]


def load_reasonseg_hf(
    root: str | os.PathLike[str] | None = None, split: str = "val", **kwargs: Any
) -> ReasonSegHFDataset:
    """Build the dataset behind ``load("reasonseg-hf", ...)``; see :class:`ReasonSegHFDataset`."""
    return ReasonSegHFDataset(root, split, **kwargs)

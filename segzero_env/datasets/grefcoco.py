"""gRefCOCO (GRES): referring expressions with one target, several targets, or none.

Layout (``root`` holds ``grefcoco/`` and ``images/``, as the reference loader ``grefer.py`` reads it)::

    <root>/grefcoco/grefs(<split_by>).p      pickle: list of refs (grefs(<split_by>).json is read too)
    <root>/grefcoco/instances.json           COCO annotations (images, annotations)
    <root>/images/train2014/                 COCO train2014 images (``image_root`` overrides this;
                                             the refer layout's images/mscoco/images/train2014 works too)

The split scheme is ``unc`` (splits ``train``, ``val``, ``testA``, ``testB``). When both a pickle
and a JSON refs file exist, the pickle is read, as ``grefer.py`` does (with the package's unpickler that
builds plain values only, as for RefCOCO).

A ref is a dict with ``ref_id``, ``image_id``, ``split``, ``sentences`` (``sent``, ``raw``,
``sent_id``) and ``ann_id``: a LIST of target annotation ids (a bare int is read as a one-item list).
``ann_id == [-1]`` marks a no-target expression ("the dog on the sofa" when there is none).

Samples: one per sentence, ``sample_id = "<ref_id>_<sent_id>"``, query = the ``sent`` field
(``sentence_field="raw"`` gives the original text). The mask is the union of the target
annotations' segmentations (polygons, uncompressed or compressed RLE, decoded by pycocotools as
the RefCOCO loader does); crowd annotations are left out of it, as GRES's loaders do. A no-target
sample has an all-zero mask. ``gt_box`` is the target's COCO box for a single target and ``None``
otherwise (the env then uses the extent of the mask). ``meta`` holds ``no_target`` (bool),
``ann_ids``, ``n_targets``, ``gt_boxes`` (one ``(x1, y1, x2, y2)`` per target, original frame),
``ref_id``, ``image_id``, ``sent_index``, ``image_path``, ``category_ids`` and ``split_by``.

Bad data follows the RefCOCO loader's rules (:mod:`segzero_env.datasets.refcoco`): a missing
folder or file and an absent split always raise :class:`DatasetError` naming the file; a malformed
ref (no sentences, ids that are not ints, ``-1`` beside real ids, an empty ``ann_id`` list) is found
while indexing and skipped with one warning when ``strict=False``; problems that need
``instances.json`` or the image raise in ``ds[i]`` unless ``verify=True`` checked them while indexing.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segzero_env.datasets.coco_masks import segmentation_to_mask
from segzero_env.datasets.errors import (
    SKIP_HINT,
    DatasetEncodingWarning,
    DatasetError,
    SkipLog,
    paused_gc,
    read_json_with_encoding,
)
from segzero_env.datasets.images import read_image
from segzero_env.datasets.indexed import IndexedDataset
from segzero_env.datasets.paths import resolve_root
from segzero_env.datasets.refcoco import _image_entry, _read_refs
from segzero_env.types import Sample

NAME = "grefcoco"
SPLITS = ("train", "val", "testA", "testB")
NO_TARGET_ID = -1
"""The ``ann_id`` entry that marks a no-target expression (``ann_id == [-1]``)."""

IMAGE_SUBDIRS = (Path("images", "train2014"), Path("images", "mscoco", "images", "train2014"))
"""Image folders tried under ``root``, in order, when ``image_root`` is not given."""


@dataclass(frozen=True)
class _Entry:
    sample_id: str
    ref_id: int
    ann_ids: tuple[int, ...]  # empty for a no-target expression
    image_id: int
    sent_index: int
    query: str


def _dataset_dir(root: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """Return ``(folder with grefs and instances, root)``."""
    base = resolve_root(root, NAME, ("grefcoco", "refer", ""), lambda p: (p / NAME).is_dir() or p.name == NAME)
    if (base / NAME).is_dir():
        return base / NAME, base
    if base.name == NAME and base.is_dir():
        return base, base.parent
    raise DatasetError(
        base / NAME, "grefcoco folder not found", "pass the folder holding grefcoco/ and images/ as root"
    )


def refs_paths(folder: Path, split_by: str) -> tuple[Path, Path]:
    """The two refs files ``grefer.py`` looks for, in its order: the pickle, then the JSON."""
    return folder / f"grefs({split_by}).p", folder / f"grefs({split_by}).json"


def read_grefs(folder: Path, split_by: str) -> tuple[list[Any], Path]:
    """Read the refs (pickle first, then JSON); return them and the file read.

    Raises:
        DatasetError: Neither file exists (the message names both and lists the grefs files present),
            or the file does not load as a list.
    """
    pickled, as_json = refs_paths(folder, split_by)
    if pickled.is_file():
        return _read_refs(pickled), pickled  # plain values only: a pickle cannot run code here
    if as_json.is_file():
        with paused_gc():
            refs, encoding = read_json_with_encoding(as_json)
        if encoding != "utf-8":
            warnings.warn(f"{as_json} is not UTF-8 and was read as cp1252; re-download it", DatasetEncodingWarning, 3)
        path = as_json
    else:
        found = sorted(p.name for p in folder.glob("grefs(*)*"))
        raise DatasetError(
            pickled,
            f"refs file not found (nor {as_json.name})" + (f"; found: {', '.join(found)}" if found else ""),
            "pass split_by=... matching one of the grefs files",
        )
    if not isinstance(refs, list):
        raise DatasetError(path, f"holds a {type(refs).__name__}, not a list of refs", "re-download it")
    return refs, path


def list_splits(root: str | os.PathLike[str] | None = None, split_by: str = "unc") -> list[str]:
    """List the splits present in the gRefCOCO refs file."""
    folder, _ = _dataset_dir(root)
    refs, _ = read_grefs(folder, split_by)
    present = {r.get("split") for r in refs if isinstance(r, dict)}
    return [s for s in SPLITS if s in present] + sorted(str(s) for s in present - set(SPLITS))


def _target_ids(raw: Any, ref_id: int, refs_path: Path) -> tuple[int, ...]:
    """The ref's target annotation ids; ``()`` for a no-target ref (``[-1]``)."""
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise DatasetError(refs_path, f"ref {ref_id} has an empty ann_id list (a no-target ref is [-1])", SKIP_HINT)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise DatasetError(refs_path, f"ref {ref_id} ann_id {raw!r:.60} holds something other than ints", SKIP_HINT)
    ids = tuple(int(v) for v in values)
    if NO_TARGET_ID in ids:
        if len(ids) > 1:
            raise DatasetError(
                refs_path, f"ref {ref_id} ann_id {list(ids)} mixes the no-target mark -1 with annotations", SKIP_HINT
            )
        return ()
    return ids


def _ref_entries(ref: Any, refs_path: Path, sentence_field: str) -> list[_Entry]:
    """Turn one ref into its sentence entries, or raise :class:`DatasetError` saying what is malformed."""
    try:
        ref_id, image_id = int(ref["ref_id"]), int(ref["image_id"])
        raw_ids, sentences = ref["ann_id"], ref["sentences"]
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"ref {ref!r:.80} lacks ref_id / ann_id / image_id / sentences"
        raise DatasetError(refs_path, problem, SKIP_HINT) from exc
    ann_ids = _target_ids(raw_ids, ref_id, refs_path)
    if not isinstance(sentences, list) or not sentences:
        raise DatasetError(refs_path, f"ref {ref_id} has no sentences", SKIP_HINT)
    entries = []
    for k, sentence in enumerate(sentences):
        query = sentence.get(sentence_field) if isinstance(sentence, dict) else None
        if not isinstance(query, str):
            raise DatasetError(refs_path, f"ref {ref_id} sentence {k} has no {sentence_field!r} text", SKIP_HINT)
        sent_id = sentence.get("sent_id", k)
        entries.append(_Entry(f"{ref_id}_{sent_id}", ref_id, ann_ids, image_id, k, query))
    return entries


class GRefCocoDataset(IndexedDataset):
    """gRefCOCO in the GRES layout, one sample per sentence, with multi-target and no-target expressions.

    Samples (ids ``"<ref_id>_<sent_id>"``) are in refs-file order. See the module docstring for the
    layout, the masks and ``meta``.

    Args:
        root: Folder holding ``grefcoco/`` and ``images/`` (or ``grefcoco/`` itself); default: the data
            folder's ``grefcoco``, ``refer`` or itself (see :mod:`segzero_env.datasets.paths`).
        split: ``"train"``, ``"val"``, ``"testA"`` or ``"testB"``.
        split_by: Split scheme of the refs file name (``"unc"``).
        sentence_field: Sentence text used as the query: ``"sent"`` (default) or ``"raw"``.
        image_root: Folder with the COCO train2014 images (default: the first of :data:`IMAGE_SUBDIRS`
            under the root that exists).
        strict: Raise on the first bad sample found while indexing (else skip, warn once).
        verify: Check every sample while indexing (reads instances.json, decodes every mask and image).
    """

    name = NAME
    has_masks = True

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "val",
        *,
        split_by: str = "unc",
        sentence_field: str = "sent",
        image_root: str | os.PathLike[str] | None = None,
        strict: bool = True,
        verify: bool = False,
    ) -> None:
        self.split = split
        self.split_by = split_by
        self.folder, base = _dataset_dir(root)
        if image_root is not None:
            self.image_root = Path(image_root)
        else:
            tried = [base / sub for sub in IMAGE_SUBDIRS]
            self.image_root = next((p for p in tried if p.is_dir()), tried[0])
        self.instances_path = self.folder / "instances.json"
        if not self.instances_path.is_file():
            raise DatasetError(self.instances_path, "instances file not found", "it ships beside the grefs file")
        refs, self.refs_path = read_grefs(self.folder, split_by)
        self.skip_log = SkipLog(f"{NAME} {split} ({self.refs_path})", strict=strict)
        with paused_gc():
            self._entries = self._build_index(refs, sentence_field)
        del refs
        self._instances_cache: tuple[dict[int, tuple[str, int, int] | str], dict[int, dict[str, Any]]] | None = None
        if verify:
            self._entries = self._verified(self._entries)
        self._set_ids([e.sample_id for e in self._entries])
        self.skip_log.warn_once(len(self._entries))

    def _build_index(self, refs: list[Any], sentence_field: str) -> list[_Entry]:
        splits = {r.get("split") for r in refs if isinstance(r, dict)}
        if self.split not in splits:
            raise DatasetError(
                self.refs_path,
                f"has no split {self.split!r} (it has: {', '.join(sorted(map(str, splits)))})",
                "pick one of those, or another split_by",
            )
        entries: list[_Entry] = []
        for ref in refs:
            if isinstance(ref, dict) and ref.get("split") != self.split:
                continue
            try:
                entries.extend(_ref_entries(ref, self.refs_path, sentence_field))
            except DatasetError as exc:
                self.skip_log.record(exc)
        return entries

    def _instances(self) -> tuple[dict[int, tuple[str, int, int] | str], dict[int, dict[str, Any]]]:
        """The split's images (or what is wrong with each) and annotations, parsed from instances.json on first use."""
        if self._instances_cache is None:
            with paused_gc():
                data, encoding = read_json_with_encoding(self.instances_path)
                if encoding != "utf-8":
                    warnings.warn(
                        f"{self.instances_path} is not UTF-8 and was read as cp1252; re-download it",
                        DatasetEncodingWarning,
                        stacklevel=4,
                    )
                if (
                    not isinstance(data, dict)
                    or not isinstance(data.get("images"), list)
                    or not isinstance(data.get("annotations"), list)
                ):
                    raise DatasetError(
                        self.instances_path, "lacks the 'images' / 'annotations' lists", "re-download it"
                    )
                ann_ids = {a for e in self._entries for a in e.ann_ids}
                image_ids = {e.image_id for e in self._entries}
                # As in the RefCOCO loader: entries without a whole-number id cannot be referred to; a
                # referred entry that is unusable fails only the samples that use it.
                images = {
                    im["id"]: _image_entry(im, self.instances_path)
                    for im in data["images"]
                    if isinstance(im, dict) and type(im.get("id")) is int and im["id"] in image_ids
                }
                annotations = {
                    a["id"]: a
                    for a in data["annotations"]
                    if isinstance(a, dict) and type(a.get("id")) is int and a["id"] in ann_ids
                }
                self._instances_cache = (images, annotations)
        return self._instances_cache

    def _load(self, entry: _Entry) -> Sample:
        images, annotations = self._instances()
        image = images.get(entry.image_id)
        if image is None:
            raise DatasetError(self.instances_path, f"has no image {entry.image_id} (ref {entry.ref_id})", SKIP_HINT)
        if isinstance(image, str):
            raise DatasetError(self.instances_path, image, SKIP_HINT)
        file_name, height, width = image
        image_path = str(self.image_root / file_name)
        if not os.path.isfile(image_path):
            raise DatasetError(image_path, f"image file missing (ref {entry.ref_id})", SKIP_HINT)
        pixels = read_image(image_path)
        if pixels.shape[:2] != (height, width):
            raise DatasetError(
                image_path, f"image is {pixels.shape[1]}x{pixels.shape[0]}, instances.json says {width}x{height}"
            )
        mask = np.zeros((height, width), dtype=np.uint8)
        boxes, categories = [], []
        for ann_id in entry.ann_ids:
            ann = annotations.get(ann_id)
            if ann is None:
                raise DatasetError(self.instances_path, f"has no annotation {ann_id} (ref {entry.ref_id})", SKIP_HINT)
            if ann.get("image_id", entry.image_id) != entry.image_id:
                raise DatasetError(
                    self.instances_path,
                    f"annotation {ann_id} is on image {ann['image_id']}, ref {entry.ref_id} says {entry.image_id}",
                )
            where = f"{self.instances_path} annotation {ann_id}"
            bbox = ann.get("bbox", [0, 0, -1, -1])
            if not isinstance(bbox, list) or len(bbox) != 4 or not all(type(v) in (int, float) for v in bbox):
                raise DatasetError(where, f"'bbox' is not 4 numbers ({bbox!r:.60})", SKIP_HINT)
            x, y, w, h = (float(v) for v in bbox)
            categories.append(ann.get("category_id"))
            boxes.append((x, y, x + w, y + h) if w >= 0 and h >= 0 else None)
            if ann.get("iscrowd"):
                continue  # crowd regions are not targets, as in GRES's loaders
            mask |= segmentation_to_mask(ann.get("segmentation"), height, width, where)
        return Sample(
            sample_id=entry.sample_id,
            image=pixels,
            query=entry.query,
            mask=mask,
            gt_box=boxes[0] if len(boxes) == 1 else None,
            meta={
                "no_target": not entry.ann_ids,
                "ann_ids": list(entry.ann_ids),
                "n_targets": len(entry.ann_ids),
                "gt_boxes": [b for b in boxes if b is not None],
                "ref_id": entry.ref_id,
                "image_id": entry.image_id,
                "sent_index": entry.sent_index,
                "image_path": image_path,
                "category_ids": categories,
                "split_by": self.split_by,
            },
        )

    def _verified(self, entries: list[_Entry]) -> list[_Entry]:
        # Sentences of one ref share the image and mask: check each ref once.
        problems: dict[int, DatasetError | None] = {}
        kept = []
        for entry in entries:
            if entry.ref_id not in problems:
                try:
                    self._load(entry)
                    problems[entry.ref_id] = None
                except DatasetError as exc:
                    problems[entry.ref_id] = exc
            error = problems[entry.ref_id]
            if error is None:
                kept.append(entry)
            else:
                self.skip_log.record(error)
        return kept

    def __getitem__(self, index: int) -> Sample:
        """Decode the image and the (union, possibly empty) mask of sample ``index``."""
        return self._load(self._entries[index])


def load_grefcoco(root: str | os.PathLike[str] | None = None, split: str = "val", **kwargs: Any) -> GRefCocoDataset:
    """Build ``load("grefcoco", ...)``; see :class:`GRefCocoDataset`."""
    return GRefCocoDataset(root, split, **kwargs)

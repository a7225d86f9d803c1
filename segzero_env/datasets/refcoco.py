"""RefCOCO, RefCOCO+ and RefCOCOg in the refer layout, one sample per sentence.

Layout (``root`` is the folder holding the dataset folders and ``images/``)::

    <root>/<name>/refs(<split_by>).p        pickle: list of refs (ref_id, ann_id, image_id, split, sentences)
    <root>/<name>/instances.json            COCO annotations (images, annotations)
    <root>/images/mscoco/images/train2014/  COCO train2014 images (``image_root`` overrides this)

``<name>`` is ``refcoco``, ``refcoco+`` or ``refcocog``. The split scheme is ``umd`` for RefCOCOg
and ``unc`` for the others, as the benchmarks report them (``split_by`` overrides it; ``google``
is RefCOCOg's other scheme). Splits: ``train``, ``val``, ``test``, ``testA``, ``testB`` (whichever
the scheme has). The refs file is a pickle: load only files you trust. It is read with
:func:`~segzero_env.trust.load_plain_pickle`, which refuses a pickle that names any Python object
(the refer files hold lists and dicts only) unless code is allowed.

Samples: one per sentence, ``sample_id = "<ref_id>_<sent_id>"``, query = the sentence's ``sent``
field (lower-cased, tokenised text; ``sentence_field="raw"`` gives the original). The mask is the
referred annotation's segmentation through pycocotools: polygons and uncompressed RLEs (list
``counts``) via ``frPyObjects``, compressed RLEs as they are, parts merged, ``> 0`` -> 1.
``gt_box`` is the annotation's COCO box ``[x, y, w, h]`` as ``(x, y, x + w, y + h)``, original frame.

Index building reads only the refs pickle. ``instances.json`` (tens of MB, seconds to parse)
is read on the first ``ds[i]``, and only the annotations of the split are kept.

Bad data and ``strict``: a missing folder, refs file or instances file, and a split the refs do
not have, always raise :class:`DatasetError`. A malformed ref (no sentences, missing ids) is
found while indexing: ``strict=False`` skips it with one warning. Problems that need
``instances.json`` or the image raise in ``ds[i]`` in either mode, unless ``verify=True``
checked every sample while indexing (what ``segzero data check`` does), in which case
``strict=False`` skips those too: an annotation or image missing from it, an image entry without
a positive whole ``height`` / ``width`` / a ``file_name`` or over the pixel limit (only its own
samples fail), an image file missing, corrupt or over the pixel limit, and every malformed
segmentation :func:`~segzero_env.datasets.coco_masks.segmentation_to_mask` refuses (polygons far
outside the image, RLE counts that do not add up to the image, malformed compressed RLE).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segzero_env.datasets.coco_masks import segmentation_to_mask
from segzero_env.datasets.errors import (
    SKIP_HINT,
    DatasetEncodingWarning,
    DatasetError,
    SkipLog,
    paused_gc,
    read_json_with_encoding,
)
from segzero_env.datasets.images import check_image_size, read_image
from segzero_env.datasets.indexed import IndexedDataset
from segzero_env.datasets.paths import resolve_root
from segzero_env.trust import CodeNotAllowedError, load_plain_pickle
from segzero_env.types import Sample

NAMES = ("refcoco", "refcoco+", "refcocog")
DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
SPLITS = ("train", "val", "test", "testA", "testB")
IMAGE_SUBDIR = Path("images", "mscoco", "images", "train2014")


@dataclass(frozen=True)
class _Entry:
    sample_id: str
    ref_id: int
    ann_id: int
    image_id: int
    sent_index: int
    query: str


@dataclass(frozen=True)
class _Instances:
    images: dict[int, tuple[str, int, int] | str]  # (file name, height, width), or what is wrong with the entry
    annotations: dict[int, dict[str, Any]]


def _whole(value: object) -> bool:
    return type(value) is int and value > 0


def _image_entry(entry: dict[str, Any], path: Path) -> tuple[str, int, int] | str:
    """An ``images`` entry of instances.json as ``(file_name, height, width)``, or the reason it is unusable."""
    for key in ("height", "width"):
        if not _whole(entry.get(key)):
            return f"image {entry['id']} entry lacks a positive whole {key!r} (it has {entry.get(key)!r})"
    if not isinstance(entry.get("file_name"), str) or not entry["file_name"]:
        return f"image {entry['id']} entry lacks a 'file_name'"
    height, width = entry["height"], entry["width"]
    try:
        check_image_size(path, width, height, f"image {entry['id']} entry claims")
    except DatasetError as exc:
        return exc.problem
    return entry["file_name"], height, width


def _dataset_dir(root: str | os.PathLike[str] | None, name: str) -> tuple[Path, Path]:
    """Return ``(folder with refs and instances, refer root)``."""
    base = resolve_root(root, name, ("refer", ""), lambda p: (p / name).is_dir())
    if (base / name).is_dir():
        return base / name, base
    if base.name == name:
        return base, base.parent
    raise DatasetError(base / name, f"{name} folder not found", f"pass the folder holding {name}/ and images/ as root")


def list_splits(
    root: str | os.PathLike[str] | None = None, name: str = "refcocog", split_by: str | None = None
) -> list[str]:
    """List the splits present in the refs file of ``name``."""
    folder, _ = _dataset_dir(root, name)
    refs = _read_refs(folder / f"refs({split_by or DEFAULT_SPLIT_BY[name]}).p")
    present = {r.get("split") for r in refs if isinstance(r, dict)}
    return [s for s in SPLITS if s in present] + sorted(str(s) for s in present - set(SPLITS))


def _read_refs(path: Path) -> list[Any]:
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("refs(*).p"))
        raise DatasetError(
            path, "refs file not found" + (f" (found: {', '.join(found)})" if found else ""), "pass split_by=..."
        )
    try:
        with open(path, "rb") as f, paused_gc():
            refs = load_plain_pickle(f)
    except CodeNotAllowedError as exc:
        raise DatasetError(path, str(exc), "use the refs file from the dataset's authors") from exc
    except Exception as exc:  # a damaged pickle can raise nearly anything
        raise DatasetError(path, f"does not unpickle ({type(exc).__name__}: {exc})", "re-download it") from exc
    if not isinstance(refs, list):
        raise DatasetError(path, f"holds a {type(refs).__name__}, not a list of refs", "re-download it")
    return refs


def _ref_entries(ref: Any, refs_path: Path, sentence_field: str) -> list[_Entry]:
    """Turn one ref into its sentence entries, or raise :class:`DatasetError` saying what is malformed."""
    try:
        ref_id, ann_id, image_id = int(ref["ref_id"]), int(ref["ann_id"]), int(ref["image_id"])
        sentences = ref["sentences"]
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"ref {ref!r:.80} lacks ref_id / ann_id / image_id / sentences"
        raise DatasetError(refs_path, problem, SKIP_HINT) from exc
    if not isinstance(sentences, list) or not sentences:
        raise DatasetError(refs_path, f"ref {ref_id} has no sentences", SKIP_HINT)
    entries = []
    for k, sentence in enumerate(sentences):
        query = sentence.get(sentence_field) if isinstance(sentence, dict) else None
        if not isinstance(query, str):
            raise DatasetError(refs_path, f"ref {ref_id} sentence {k} has no {sentence_field!r} text", SKIP_HINT)
        sent_id = sentence.get("sent_id", k)
        entries.append(_Entry(f"{ref_id}_{sent_id}", ref_id, ann_id, image_id, k, query))
    return entries


class RefCocoDataset(IndexedDataset):
    """One of RefCOCO / RefCOCO+ / RefCOCOg (refer layout), one sample per sentence.

    Samples (ids ``"<ref_id>_<sent_id>"``) are in refs-file order.

    Args:
        root: Folder holding ``<name>/`` and ``images/`` (or ``<name>/`` itself); default: see
            :mod:`segzero_env.datasets.paths`.
        split: ``"train"``, ``"val"``, ``"test"``, ``"testA"`` or ``"testB"``.
        name: ``"refcoco"``, ``"refcoco+"`` or ``"refcocog"``.
        split_by: Split scheme (``"unc"``, ``"umd"``, ``"google"``); default per dataset.
        sentence_field: Sentence text used as the query: ``"sent"`` (default) or ``"raw"``.
        image_root: Folder with the COCO train2014 images (default ``<root>/images/mscoco/images/train2014``).
        strict: Raise on the first bad sample found while indexing (else skip, warn once).
        verify: Check every sample while indexing (reads instances.json, decodes every mask and image).
    """

    has_masks = True

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "val",
        *,
        name: str = "refcocog",
        split_by: str | None = None,
        sentence_field: str = "sent",
        image_root: str | os.PathLike[str] | None = None,
        strict: bool = True,
        verify: bool = False,
    ) -> None:
        if name not in NAMES:
            raise ValueError(f"unknown RefCOCO dataset {name!r}; expected one of {', '.join(NAMES)}")
        self.name = name
        self.split = split
        self.split_by = split_by or DEFAULT_SPLIT_BY[name]
        self.folder, refer_root = _dataset_dir(root, name)
        self.image_root = Path(image_root) if image_root is not None else refer_root / IMAGE_SUBDIR
        self.refs_path = self.folder / f"refs({self.split_by}).p"
        self.instances_path = self.folder / "instances.json"
        if not self.instances_path.is_file():
            raise DatasetError(self.instances_path, "instances file not found", "it ships beside the refs file")
        self.skip_log = SkipLog(f"{name} {split} ({self.refs_path})", strict=strict)
        with paused_gc():  # the whole refs structure is built and dropped inside
            self._entries = self._build_index(sentence_field)
        self._instances_cache: _Instances | None = None
        if verify:
            self._entries = self._verified(self._entries)
        self._set_ids([e.sample_id for e in self._entries])
        self.skip_log.warn_once(len(self._entries))

    def _build_index(self, sentence_field: str) -> list[_Entry]:
        refs = _read_refs(self.refs_path)
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

    def _instances(self) -> _Instances:
        """Return the split's images and annotations, parsing instances.json on first use."""
        if self._instances_cache is None:
            with paused_gc():  # the parsed file is built and dropped inside
                self._instances_cache = self._parse_instances()
        return self._instances_cache

    def _parse_instances(self) -> _Instances:
        """Parse instances.json, keeping only the images and annotations of this split's refs."""
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
            raise DatasetError(self.instances_path, "lacks the 'images' / 'annotations' lists", "re-download it")
        ann_ids = {e.ann_id for e in self._entries}
        image_ids = {e.image_id for e in self._entries}
        # Entries without a whole-number id cannot be referred to: they are passed over. A referred
        # entry that is unusable fails only the samples that use it (see _lookup).
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
        return _Instances(images, annotations)

    def _lookup(self, entry: _Entry) -> tuple[dict[str, Any], str, int, int]:
        instances = self._instances()
        ann = instances.annotations.get(entry.ann_id)
        if ann is None:
            raise DatasetError(self.instances_path, f"has no annotation {entry.ann_id} (ref {entry.ref_id})", SKIP_HINT)
        image = instances.images.get(entry.image_id)
        if image is None:
            raise DatasetError(self.instances_path, f"has no image {entry.image_id} (ref {entry.ref_id})", SKIP_HINT)
        if isinstance(image, str):
            raise DatasetError(self.instances_path, image, SKIP_HINT)
        if ann.get("image_id", entry.image_id) != entry.image_id:
            raise DatasetError(
                self.instances_path,
                f"annotation {entry.ann_id} is on image {ann['image_id']}, ref {entry.ref_id} says {entry.image_id}",
            )
        file_name, height, width = image
        return ann, str(self.image_root / file_name), height, width

    def _load(self, entry: _Entry) -> Sample:
        ann, image_path, height, width = self._lookup(entry)
        if not os.path.isfile(image_path):
            raise DatasetError(image_path, f"image file missing (ref {entry.ref_id})", SKIP_HINT)
        image = read_image(image_path)
        if image.shape[:2] != (height, width):
            raise DatasetError(
                image_path, f"image is {image.shape[1]}x{image.shape[0]}, instances.json says {width}x{height}"
            )
        where = f"{self.instances_path} annotation {entry.ann_id}"
        mask = segmentation_to_mask(ann.get("segmentation"), height, width, where)
        bbox = ann.get("bbox", [0, 0, -1, -1])
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(type(v) in (int, float) for v in bbox):
            raise DatasetError(where, f"'bbox' is not 4 numbers ({bbox!r:.60})", SKIP_HINT)
        x, y, w, h = (float(v) for v in bbox)
        return Sample(
            sample_id=entry.sample_id,
            image=image,
            query=entry.query,
            mask=mask,
            gt_box=(x, y, x + w, y + h) if w >= 0 and h >= 0 else None,
            meta={
                "ref_id": entry.ref_id,
                "ann_id": entry.ann_id,
                "image_id": entry.image_id,
                "sent_index": entry.sent_index,
                "image_path": image_path,
                "category_id": ann.get("category_id"),
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
        """Decode the image and the mask of sample ``index``."""
        return self._load(self._entries[index])


def load_refcoco(root: str | os.PathLike[str] | None = None, split: str = "val", **kwargs: Any) -> RefCocoDataset:
    """Build ``load("refcoco", ...)`` (split scheme ``unc``); see :class:`RefCocoDataset`."""
    return RefCocoDataset(root, split, name="refcoco", **kwargs)


def load_refcoco_plus(root: str | os.PathLike[str] | None = None, split: str = "val", **kwargs: Any) -> RefCocoDataset:
    """Build ``load("refcoco+", ...)`` (split scheme ``unc``); see :class:`RefCocoDataset`."""
    return RefCocoDataset(root, split, name="refcoco+", **kwargs)


def load_refcocog(root: str | os.PathLike[str] | None = None, split: str = "val", **kwargs: Any) -> RefCocoDataset:
    """Build ``load("refcocog", ...)`` (split scheme ``umd``); see :class:`RefCocoDataset`."""
    return RefCocoDataset(root, split, name="refcocog", **kwargs)

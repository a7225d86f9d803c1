"""Write small datasets in their real on-disk formats, and check masks independently of the loaders.

Used by tests/test_datasets_*.py and benchmarks/bench_datasets.py.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def noise_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random RGB image (JPEG-encodable)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=quality)


def write_reasonseg_item(
    folder: Path,
    stem: str,
    size: tuple[int, int],
    shapes: list[dict[str, Any]],
    texts: Sequence[str] = ("the thing",),
    is_sentence: bool = False,
    encoding: str = "utf-8",
    seed: int = 0,
) -> None:
    """One ``<stem>.jpg`` + ``<stem>.json`` pair in the LISA layout."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jpeg(folder / f"{stem}.jpg", noise_image(size[0], size[1], seed))
    doc = {"text": list(texts), "is_sentence": is_sentence, "shapes": shapes}
    (folder / f"{stem}.json").write_bytes(json.dumps(doc, ensure_ascii=False).encode(encoding))


def rect(label: str, x1: float, y1: float, x2: float, y2: float) -> dict[str, Any]:
    """A rectangle shape (LabelMe-style corner order)."""
    return {"label": label, "points": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]], "shape_type": "polygon"}


def point_in_polygon(points: Sequence[Sequence[float]], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Geometric truth for a polygon, independent of any rasteriser.

    Returns ``(inside, near_edge)``: whether each pixel centre ``(x + 0.5, y + 0.5)`` is inside
    the polygon (crossing number), and whether it lies within 1.5 px of an edge, where
    rasterisers legitimately differ (pixel-corner vs pixel-centre sampling, outlines).
    """
    poly = np.asarray(points, dtype=np.float64)
    yy, xx = np.mgrid[:height, :width]
    px, py = xx + 0.5, yy + 0.5
    inside = np.zeros((height, width), bool)
    near = np.zeros((height, width), bool)
    for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        crosses = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (px < x_at)
        dx, dy = x2 - x1, y2 - y1
        t = np.clip(((px - x1) * dx + (py - y1) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        near |= np.hypot(px - (x1 + t * dx), py - (y1 + t * dy)) <= 1.5
    return inside, near


def assert_matches_polygon(actual: np.ndarray, points: Sequence[Sequence[float]]) -> None:
    """``actual`` is 1 inside and 0 outside the polygon, except within 1.5 px of its edges."""
    inside, near = point_in_polygon(points, actual.shape[0], actual.shape[1])
    differ = (actual.astype(bool) != inside) & ~near
    assert not differ.any(), f"{int(differ.sum())} pixels away from the edges differ, e.g. {np.argwhere(differ)[:3]}"
    assert (inside & ~near).sum() > 0, "polygon too small to check"


def rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts of ``mask`` (column-major runs, starting with a run of zeros)."""
    flat = mask.astype(bool).flatten(order="F")
    counts, current, run = [], False, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return counts


def coco_image_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.jpg"


def write_refer(
    root: Path,
    name: str,
    split_by: str,
    refs: list[dict[str, Any]],
    images: dict[int, tuple[int, int]],
    annotations: list[dict[str, Any]],
    write_images: bool = True,
) -> None:
    """The refer layout: ``<root>/<name>/refs(<split_by>).p``, ``instances.json``, COCO images."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"refs({split_by}).p", "wb") as f:
        pickle.dump(refs, f)
    doc = {
        "images": [{"id": i, "file_name": coco_image_name(i), "height": h, "width": w} for i, (h, w) in images.items()],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "thing"}],
    }
    (folder / "instances.json").write_text(json.dumps(doc))
    if write_images:
        for image_id, (h, w) in images.items():
            write_jpeg(root / "images/mscoco/images/train2014" / coco_image_name(image_id), noise_image(h, w, image_id))


def write_grefcoco(
    root: Path,
    refs: list[dict[str, Any]],
    images: dict[int, tuple[int, int]],
    annotations: list[dict[str, Any]],
    split_by: str = "unc",
    refs_format: str = "p",
) -> None:
    """The gRefCOCO layout: ``<root>/grefcoco/grefs(<split_by>).p`` (or ``.json``), ``instances.json``,
    images in ``<root>/images/train2014``. Refs list their targets as ``ann_id`` lists, ``[-1]`` for none."""
    folder = root / "grefcoco"
    folder.mkdir(parents=True, exist_ok=True)
    if refs_format == "p":
        with open(folder / f"grefs({split_by}).p", "wb") as f:
            pickle.dump(refs, f)
    else:
        (folder / f"grefs({split_by}).json").write_text(json.dumps(refs))
    doc = {
        "images": [{"id": i, "file_name": coco_image_name(i), "height": h, "width": w} for i, (h, w) in images.items()],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "thing"}],
    }
    (folder / "instances.json").write_text(json.dumps(doc))
    for image_id, (h, w) in images.items():
        write_jpeg(root / "images/train2014" / coco_image_name(image_id), noise_image(h, w, image_id))


def make_gref(ref_id: int, ann_ids: list[int], image_id: int, split: str, sentences: Sequence[str]) -> dict[str, Any]:
    """A gRefCOCO ref: ``ann_id`` is a list of target annotation ids, ``[-1]`` for a no-target expression."""
    return {
        "ref_id": ref_id,
        "ann_id": list(ann_ids),
        "image_id": image_id,
        "split": split,
        "category_id": [] if ann_ids == [-1] else [1] * len(ann_ids),
        "sent_ids": [ref_id * 10 + k for k in range(len(sentences))],
        "sentences": [
            {"sent_id": ref_id * 10 + k, "sent": s.lower(), "raw": s, "tokens": s.lower().split()}
            for k, s in enumerate(sentences)
        ],
    }


def write_segzero_train(
    folder: Path,
    ids: Sequence[str],
    problems: Sequence[str],
    solutions: Sequence[str],
    images: Sequence[np.ndarray],
    sizes: Sequence[tuple[int, int]],
) -> None:
    """Seg-Zero's training table (refCOCOg_9k_840 columns; ``sizes`` are original ``(height, width)``) as parquet.

    Written where a hub snapshot puts it: ``<folder>/data/train-00000-of-00001.parquet``.
    """
    import datasets

    table = datasets.Dataset.from_dict(
        {
            "id": list(ids),
            "problem": list(problems),
            "solution": list(solutions),
            "image": list(images),
            "img_height": [h for h, _ in sizes],
            "img_width": [w for _, w in sizes],
        },
        features=datasets.Features(
            {
                "id": datasets.Value("string"),
                "problem": datasets.Value("string"),
                "solution": datasets.Value("string"),
                "image": datasets.Image(),
                "img_height": datasets.Value("int64"),
                "img_width": datasets.Value("int64"),
            }
        ),
    )
    table.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))


def make_ref(ref_id: int, ann_id: int, image_id: int, split: str, sentences: Sequence[str]) -> dict[str, Any]:
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "split": split,
        "category_id": 1,
        "sent_ids": [ref_id * 10 + k for k in range(len(sentences))],
        "sentences": [
            {"sent_id": ref_id * 10 + k, "sent": s.lower(), "raw": s, "tokens": s.lower().split()}
            for k, s in enumerate(sentences)
        ],
        "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
    }


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """A real baseline JPEG of 16 x 16 pixels whose frame header (SOF0) is rewritten to claim ``width x height``.

    Decoders that trust the header allocate ``width * height * 3`` bytes before finding the data
    short; a loader must refuse such a file from its header alone.
    """
    import io
    import struct

    buffer = io.BytesIO()
    Image.fromarray(noise_image(16, 16)).save(buffer, "JPEG", quality=50)
    data = bytearray(buffer.getvalue())
    pos = 2
    while data[pos + 1] != 0xC0:  # walk the marker segments to the baseline frame header
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    data[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def nested_json(depth: int) -> str:
    """An annotation whose ``shapes`` value is a list nested ``depth`` deep (valid JSON)."""
    return '{"text": ["x"], "is_sentence": false, "shapes": ' + "[" * depth + "]" * depth + "}"

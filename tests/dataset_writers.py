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
from PIL import Image, ImageDraw
from scipy import ndimage


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


def pil_polygon(points: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """A polygon rasterised by PIL (an implementation independent of OpenCV and pycocotools)."""
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def assert_same_up_to_boundary(actual: np.ndarray, expected: np.ndarray) -> None:
    """Masks agree everywhere except on expected's one-pixel boundary band (rasterisers differ only there)."""
    band = ndimage.binary_dilation(expected, iterations=1) & ~ndimage.binary_erosion(expected, iterations=1)
    differ = actual.astype(bool) != expected
    assert not (differ & ~band).any(), f"{int((differ & ~band).sum())} pixels differ away from the boundary"
    interior = ndimage.binary_erosion(expected, iterations=1)
    assert interior.sum() > 0 and actual.astype(bool)[interior].all()


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

"""Index time and decode throughput of the real-data loaders, on generated folders of benchmark size.

Generates (in a temporary folder):

- a ReasonSeg-layout split of 779 images (the size of ReasonSeg test) with LabelMe-style JSONs
  (1-4 polygons of 20-300 points, some ignore and flag shapes, 1-3 texts);
- a RefCOCOg-layout folder: a refs(umd).p of full RefCOCOg size (49,822 refs, ~95k sentences,
  all splits), an instances.json with every referred annotation as polygons, and the images of
  the val split (1,300 images, 2,573 refs, ~4.9k sentences).

Prints the file-listing time, index time (best of ``--repeat``), the first-access cost (RefCOCOg parses
instances.json then) and samples/s of full decode (image + mask); the last line is JSON.

    python benchmarks/bench_datasets.py [--width 800 --height 600 --decode 400 --keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segzero_env.datasets.reasonseg import ReasonSegDataset
from segzero_env.datasets.refcoco import RefCocoDataset

REASONSEG_IMAGES = 779
REFCOCOG_REFS = 49_822
REFCOCOG_VAL_REFS = 2_573
REFCOCOG_VAL_IMAGES = 1_300


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A photo-like image (gradients + blobs) that JPEG compresses to a realistic size."""
    small = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-8, 9, image.shape)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def random_polygon(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    radius = rng.uniform(0.05, 0.3) * min(width, height)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.6, 1.0, n)
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1).round(2)


def make_reasonseg(folder: Path, n: int, height: int, width: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    for k in range(n):
        stem = f"{k:012d}_bench"
        cv2.imwrite(str(folder / f"{stem}.jpg"), smooth_image(rng, height, width), [cv2.IMWRITE_JPEG_QUALITY, 90])
        shapes = []
        for j in range(int(rng.integers(1, 5))):
            label = "target" if j == 0 else str(rng.choice(["target", "ignore", "flag"]))
            points = random_polygon(rng, height, width, int(rng.integers(20, 300)))
            shapes.append({"label": label, "labels": [label], "shape_type": "polygon", "points": points.tolist()})
        texts = [f"what object in this picture would someone use for task {k} variant {t}?" for t in range(3)]
        doc = {"text": texts[: int(rng.integers(1, 4))], "is_sentence": bool(rng.integers(2)), "shapes": shapes}
        (folder / f"{stem}.json").write_text(json.dumps(doc))


def make_refcocog(root: Path, height: int, width: int, rng: np.random.Generator) -> None:
    folder = root / "refcocog"
    images_dir = root / "images" / "mscoco" / "images" / "train2014"
    folder.mkdir(parents=True)
    images_dir.mkdir(parents=True)
    refs, annotations, images = [], [], {}
    for ref_id in range(REFCOCOG_REFS):
        is_val = ref_id < REFCOCOG_VAL_REFS
        image_id = ref_id % REFCOCOG_VAL_IMAGES if is_val else REFCOCOG_VAL_IMAGES + ref_id // 2
        images[image_id] = True
        n_sent = 1 + (ref_id % 3 != 0)
        sentences = [
            {
                "sent_id": ref_id * 3 + s,
                "sent": f"the object number {ref_id} seen {s}",
                "raw": "The object",
                "tokens": ["the", "object", "number", str(ref_id)],
            }
            for s in range(n_sent)
        ]
        split = "val" if is_val else ("test" if ref_id % 10 == 0 else "train")
        refs.append(
            {
                "ref_id": ref_id,
                "ann_id": ref_id,
                "image_id": image_id,
                "split": split,
                "sentences": sentences,
                "sent_ids": [s["sent_id"] for s in sentences],
                "category_id": 1,
                "file_name": f"COCO_train2014_{image_id:012d}_{ref_id}.jpg",
            }
        )
        poly = random_polygon(rng, height, width, int(rng.integers(12, 60)))
        annotations.append(
            {
                "id": ref_id,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [float(v) for v in (*poly.min(0), *(poly.max(0) - poly.min(0)))],
                "segmentation": [poly.ravel().tolist()],
                "area": 1.0,
            }
        )
    with open(folder / "refs(umd).p", "wb") as f:
        pickle.dump(refs, f)
    image_list = [
        {"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "height": height, "width": width} for i in images
    ]
    (folder / "instances.json").write_text(json.dumps({"images": image_list, "annotations": annotations}))
    for image_id in range(REFCOCOG_VAL_IMAGES):
        cv2.imwrite(str(images_dir / f"COCO_train2014_{image_id:012d}.jpg"), smooth_image(rng, height, width))


def listing_time(folder: Path) -> float:
    start = time.perf_counter()
    with os.scandir(folder) as it:
        _ = [e.name for e in it]
    return time.perf_counter() - start


def timed(build: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best-of-``repeat`` wall time of ``build()`` (this machine is shared; the minimum is the cost)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = build()
        best = min(best, time.perf_counter() - start)
    return best, result


def decode_rate(ds: object, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        sample = ds[i]  # type: ignore[index]
        assert sample.mask is not None
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--height", type=int, default=600)
    parser.add_argument("--decode", type=int, default=400, help="samples decoded per dataset for samples/s")
    parser.add_argument("--repeat", type=int, default=3, help="index builds timed (the best is reported)")
    parser.add_argument("--keep", type=Path, default=None, help="generate into (and keep) this folder")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_datasets_"))
    try:
        t0 = time.perf_counter()
        if not (root / "reasonseg").exists():
            make_reasonseg(root / "reasonseg" / "test", REASONSEG_IMAGES, args.height, args.width, rng)
        if not (root / "refer").exists():
            make_refcocog(root / "refer", args.height, args.width, rng)
        print(f"generated data in {root} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

        listing = min(listing_time(root / "reasonseg" / "test") for _ in range(args.repeat))
        rs_index, rs = timed(lambda: ReasonSegDataset(root / "reasonseg", "test"), args.repeat)
        rs_rate = decode_rate(rs, min(args.decode, len(rs)))
        print(
            f"reasonseg test: {len(rs)} samples; listing {listing * 1e3:.1f} ms; index {rs_index * 1e3:.1f} ms "
            f"({(rs_index - listing) * 1e3:.1f} ms past listing); decode + rasterise {rs_rate:.1f} samples/s "
            f"({args.width}x{args.height})"
        )

        rc_index, rc = timed(lambda: RefCocoDataset(root / "refer", "val", name="refcocog"), args.repeat)
        rc_first, _ = timed(lambda: RefCocoDataset(root / "refer", "val", name="refcocog")[0], args.repeat)
        rc_first -= rc_index
        rc_rate = decode_rate(rc, min(args.decode, len(rc)))
        print(
            f"refcocog val: {len(rc)} samples ({REFCOCOG_REFS} refs in the file); index {rc_index * 1e3:.1f} ms; "
            f"first access (parses instances.json) {rc_first * 1e3:.1f} ms; decode + mask {rc_rate:.1f} samples/s"
        )
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; index times are best of {args.repeat}")
        print(
            json.dumps(
                {
                    "reasonseg_samples": len(rs),
                    "reasonseg_listing_s": round(listing, 4),
                    "reasonseg_index_s": round(rs_index, 4),
                    "reasonseg_samples_per_s": round(rs_rate, 1),
                    "refcocog_val_samples": len(rc),
                    "refcocog_index_s": round(rc_index, 4),
                    "refcocog_first_access_s": round(rc_first, 4),
                    "refcocog_samples_per_s": round(rc_rate, 1),
                    "image_size": [args.width, args.height],
                }
            )
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

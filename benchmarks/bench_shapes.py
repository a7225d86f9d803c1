"""Speed and difficulty of the synthetic shapes set, per level, on one CPU core.

For each level it prints:

1. generation speed: samples/s (wall clock and process CPU time; the CPU figure is the one to
   trust on a shared machine) over ``--samples`` fresh samples;
2. how much work a segmenter has: mean IoU of the ``box`` and ``grabcut`` segmenters given the
   ORACLE prompt (ground-truth box = mask extent, two ground-truth points from the distance
   transform), over all targets and over non-rectangular ones (the gap between box fill and a
   good mask);
3. the mix of query styles and the share of long queries.

It ends with one JSON line holding every figure.

Usage::

    python benchmarks/bench_shapes.py
    python benchmarks/bench_shapes.py --samples 1000 --segment 200 --levels 0 3
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from segzero_env.datasets import load  # noqa: E402
from segzero_env.geometry import mask_to_box, mask_to_points  # noqa: E402
from segzero_env.segmenters import make_segmenter  # noqa: E402
from segzero_env.types import Prompt  # noqa: E402

RECTANGULAR = {"square", "rectangle"}


def generation_speed(level: int, samples: int) -> dict[str, float]:
    ds = load("shapes", split="train", size=samples, level=level)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(samples):
        ds[i]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "samples_per_s_wall": samples / wall,
        "samples_per_s_cpu": samples / cpu,
        "ms_per_sample_cpu": 1e3 * cpu / samples,
    }


def oracle_ious(level: int, samples: int, segmenters: dict) -> dict[str, float]:
    ds = load("shapes", split="val", size=samples, level=level)
    scores: dict[str, list[float]] = collections.defaultdict(list)
    for i in range(samples):
        s = ds[i]
        gt = s.mask.astype(bool)
        box = mask_to_box(s.mask)
        points = np.asarray(mask_to_points(s.mask, n=2), dtype=np.float64).reshape(-1, 2)
        prompt = Prompt(box=box, points=points, point_labels=np.ones(len(points), dtype=np.int64))
        shape = s.meta["objects"][s.meta["target_index"]]["shape"]
        for name, segmenter in segmenters.items():
            pred = segmenter.segment(s.image, [prompt], image_key=s.sample_id)[0]
            iou = float((pred & gt).sum() / max((pred | gt).sum(), 1))
            scores[name].append(iou)
            if shape not in RECTANGULAR:
                scores[f"{name}_nonrect"].append(iou)
    return {f"{k}_iou": float(np.mean(v)) for k, v in sorted(scores.items())}


def query_mix(level: int, samples: int) -> dict[str, object]:
    ds = load("shapes", split="test", size=samples, level=level)
    styles: collections.Counter = collections.Counter()
    long = 0
    for i in range(samples):
        s = ds[i]
        styles[s.meta["query_style"]] += 1
        long += s.query_kind == "long"
    return {"styles": {k: v / samples for k, v in sorted(styles.items())}, "long_share": long / samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500, help="samples timed per level")
    parser.add_argument("--segment", type=int, default=100, help="samples segmented per level")
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    segmenters = {"box": make_segmenter("box"), "grabcut": make_segmenter("grabcut")}
    print(f"python {platform.python_version()}, opencv {cv2.__version__}, {os.cpu_count()} cpus")
    results: dict[str, dict] = {}
    for level in args.levels:
        row = generation_speed(level, args.samples)
        row.update(oracle_ious(level, args.segment, segmenters))
        row.update(query_mix(level, args.samples))
        results[f"L{level}"] = row
        print(
            f"level {level}: {row['samples_per_s_cpu']:.0f} samples/s cpu ({row['ms_per_sample_cpu']:.2f} ms), "
            f"{row['samples_per_s_wall']:.0f}/s wall | oracle-prompt IoU box {row['box_iou']:.3f} "
            f"(non-rect {row.get('box_nonrect_iou', float('nan')):.3f}), grabcut {row['grabcut_iou']:.3f} "
            f"(non-rect {row.get('grabcut_nonrect_iou', float('nan')):.3f}) | long {row['long_share']:.2f}"
        )
        print("   styles: " + ", ".join(f"{k} {v:.2f}" for k, v in row["styles"].items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

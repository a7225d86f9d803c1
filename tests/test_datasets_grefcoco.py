"""gRefCOCO (GRES layout): multi-target unions, no-target expressions, polygons and RLEs, bad data."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from dataset_writers import assert_matches_polygon, make_gref, rle_counts, write_grefcoco
from pycocotools import mask as mask_utils

from segzero_env.datasets import load
from segzero_env.datasets.errors import DatasetError, DatasetWarning
from segzero_env.datasets.grefcoco import GRefCocoDataset, list_splits

H, W = 40, 50
TRIANGLE = [4, 3, 30, 6, 10, 30]
SQUARE = [35, 20, 46, 20, 46, 36, 35, 36]


def disk(cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def annotation(ann_id: int, image_id: int, segmentation: object, bbox: list[float], crowd: int = 0) -> dict:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "bbox": bbox,
        "segmentation": segmentation,
        "iscrowd": crowd,
    }


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


ANNOTATIONS = [
    annotation(1, 1, [TRIANGLE], [4, 3, 26, 27]),  # polygon
    annotation(2, 1, {"size": [H, W], "counts": rle_counts(disk(20, 38, 6))}, [32, 14, 12, 12]),  # uncompressed RLE
    annotation(3, 2, compressed_rle(disk(12, 30, 7)), [23, 5, 15, 15]),  # compressed RLE
    annotation(4, 2, [SQUARE], [35, 20, 11, 16], crowd=1),
]
REFS = [
    make_gref(10, [1, 2], 1, "val", ["Both shapes", "the two things"]),  # multi-target: union
    make_gref(11, [-1], 1, "val", ["the dog on the sofa"]),  # no target
    make_gref(12, [3], 2, "val", ["the disk"]),  # one target, compressed RLE
    make_gref(13, [3, 4], 2, "val", ["disk and crowd"]),  # crowd part left out of the mask
    make_gref(14, [1], 1, "testA", ["test only"]),
]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    write_grefcoco(tmp_path, REFS, {1: (H, W), 2: (H, W)}, ANNOTATIONS)
    return tmp_path


def test_samples_per_sentence_with_multi_and_no_target(root: Path) -> None:
    ds = load("grefcoco", root=str(root), split="val")
    assert isinstance(ds, GRefCocoDataset)
    assert ds.sample_ids == ["10_100", "10_101", "11_110", "12_120", "13_130"]
    multi = ds[0]
    assert multi.query == "both shapes" and multi.meta["n_targets"] == 2 and not multi.meta["no_target"]
    union = multi.mask.copy()
    union[disk(20, 38, 6) == 1] = 0  # what remains must be exactly the polygon
    assert_matches_polygon(union, np.array(TRIANGLE, dtype=float).reshape(-1, 2).tolist())
    assert np.all(multi.mask[disk(20, 38, 6) == 1] == 1)
    assert multi.gt_box is None and multi.meta["gt_boxes"] == [(4.0, 3.0, 30.0, 30.0), (32.0, 14.0, 44.0, 26.0)]
    none = ds[2]
    assert none.meta["no_target"] and none.meta["n_targets"] == 0 and none.meta["ann_ids"] == []
    assert none.mask.shape == (H, W) and none.mask.dtype == np.uint8 and not none.mask.any()
    assert none.gt_box is None and none.image.shape == (H, W, 3)


def test_single_target_compressed_rle_and_crowd_left_out(root: Path) -> None:
    ds = load("grefcoco", root=str(root), split="val")
    single = ds[ds.index_of("12_120")]
    assert np.array_equal(single.mask, disk(12, 30, 7)) and single.gt_box == (23.0, 5.0, 38.0, 20.0)
    with_crowd = ds[ds.index_of("13_130")]
    assert np.array_equal(with_crowd.mask, disk(12, 30, 7))  # the crowd square is not a target
    assert with_crowd.meta["n_targets"] == 2


def test_json_refs_and_splits(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "json_copy"
    write_grefcoco(other, REFS, {1: (H, W), 2: (H, W)}, ANNOTATIONS, refs_format="json")
    a, b = load("grefcoco", root=str(root), split="val"), load("grefcoco", root=str(other), split="val")
    assert a.sample_ids == b.sample_ids and np.array_equal(a[0].mask, b[0].mask)
    assert list_splits(root) == ["val", "testA"]
    with pytest.raises(DatasetError, match=r"grefs\(unc\)\.p: has no split 'train'"):
        load("grefcoco", root=str(root), split="train")


def test_missing_refs_file_names_both_files_tried(root: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"grefs\(umd\)\.p: refs file not found \(nor grefs\(umd\)\.json\).*grefs\(unc\)\.p"
    ):
        load("grefcoco", root=str(root), split="val", split_by="umd")


def test_malformed_refs_name_the_file_and_skip_when_not_strict(root: Path) -> None:
    bad = [
        make_gref(20, [-1, 1], 1, "val", ["mixed"]),
        make_gref(21, [], 1, "val", ["empty list"]),
        {**make_gref(22, [1], 1, "val", ["x"]), "sentences": []},
        make_gref(23, [3], 2, "val", ["fine"]),
    ]
    refs_path = root / "grefcoco" / "grefs(unc).p"
    refs_path.write_bytes(pickle.dumps(bad))
    with pytest.raises(DatasetError, match=r"grefs\(unc\)\.p: ref 20 ann_id \[-1, 1\] mixes the no-target mark"):
        load("grefcoco", root=str(root), split="val")
    with pytest.warns(DatasetWarning, match="skipped 3 of 4"):
        ds = load("grefcoco", root=str(root), split="val", strict=False)
    assert ds.sample_ids == ["23_230"]


def test_bad_annotations_raise_on_access_naming_the_file(root: Path) -> None:
    instances = root / "grefcoco" / "instances.json"
    doc = json.loads(instances.read_text())
    doc["annotations"][0]["segmentation"] = [[1, 1, 5, 5]]  # two points
    doc["annotations"] = [a for a in doc["annotations"] if a["id"] != 2]
    instances.write_text(json.dumps(doc))
    ds = load("grefcoco", root=str(root), split="val")
    with pytest.raises(DatasetError, match=r"instances\.json annotation 1: polygon 0 has 2 points"):
        ds[0]
    assert ds[2].meta["no_target"]  # a no-target sample needs no annotation
    (root / "images" / "train2014" / "COCO_train2014_000000000002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"COCO_train2014_000000000002\.jpg: image file missing \(ref 12\)"):
        ds[3]
    with pytest.warns(DatasetWarning, match="skipped"):
        checked = GRefCocoDataset(root, "val", strict=False, verify=True)
    assert checked.sample_ids == ["11_110"]


def test_env_serves_no_target_and_multi_target_samples(root: Path) -> None:
    import gymnasium as gym

    env = gym.make("gRefCOCO-v0", data_root=str(root), segmenter="box", image_size=64)
    _, info = env.reset(options={"index": 2})
    assert info["no_target"] is True and info["gt_box"] is None
    _, info = env.reset(options={"index": 0})
    assert info["no_target"] is False


def test_eval_reports_gres_accuracies_on_a_generated_copy(root: Path, tmp_path: Path) -> None:
    from segzero_env.evaluation import evaluate

    kwargs = {"data_root": str(root), "segmenter": "box", "image_size": 64}
    oracle = evaluate("gRefCOCO-v0", kwargs, policy="oracle", out_dir=tmp_path / "oracle", progress=False)
    assert oracle["no_target"] == {"n_acc": 1.0, "t_acc": 1.0, "n_no_target": 1, "n_target": 4}
    assert oracle["n"] == 5
    rand = evaluate("gRefCOCO-v0", kwargs, policy="random", out_dir=tmp_path / "random", progress=False)
    # A random box always covers pixels, so the no-target sample is never answered empty.
    assert rand["no_target"]["n_acc"] == 0.0 and rand["no_target"]["t_acc"] == 1.0


def test_data_check_lists_grefcoco_splits(root: Path) -> None:
    from segzero_env.datasets.check import check_split

    report = check_split("grefcoco", str(root), "val")
    assert report.samples == 5 and report.skipped == 0

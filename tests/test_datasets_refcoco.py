"""RefCOCO family (refer layout): polygons, uncompressed and compressed RLEs, sentences, bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_writers import (
    assert_matches_polygon,
    coco_image_name,
    make_ref,
    point_in_polygon,
    rle_counts,
    write_jpeg,
    write_refer,
)
from pycocotools import mask as mask_utils

from segzero_env.datasets import load
from segzero_env.datasets.errors import DatasetError, DatasetWarning
from segzero_env.datasets.refcoco import RefCocoDataset

H, W = 40, 50
TRIANGLE = [4, 3, 30, 6, 10, 30]
SQUARE = [35, 20, 46, 20, 46, 36, 35, 36]


def disk(cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def annotation(ann_id: int, image_id: int, segmentation: object, bbox: list[float]) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox, "segmentation": segmentation}


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    compressed = mask_utils.encode(np.asfortranarray(disk(12, 30, 7)))
    compressed["counts"] = compressed["counts"].decode("ascii")
    anns = [
        annotation(1, 1, [TRIANGLE, SQUARE], [4, 3, 42, 33]),  # two polygon parts, merged
        annotation(2, 1, {"size": [H, W], "counts": rle_counts(disk(20, 20, 9))}, [11, 11, 19, 19]),
        annotation(3, 2, compressed, [23, 5, 15, 15]),
        annotation(4, 2, [[1, 1, 8, 1, 8, 8, 1, 8]], [1, 1, 7, 7]),
    ]
    refs = [
        make_ref(10, 1, 1, "val", ["The triangle and the square", "both shapes"]),
        make_ref(11, 2, 1, "val", ["the Round one"]),
        make_ref(12, 3, 2, "val", ["a small disk"]),
        make_ref(13, 4, 2, "train", ["training only"]),
    ]
    write_refer(tmp_path, "refcocog", "umd", refs, {1: (H, W), 2: (H, W)}, anns)
    return tmp_path


def test_one_sample_per_sentence_with_stable_ids(root: Path) -> None:
    ds = load("refcocog", root=str(root), split="val")
    assert ds.sample_ids == ["10_100", "10_101", "11_110", "12_120"]
    assert ds.index_of("11_110") == 2 and ds.split_by == "umd"
    assert [ds[i].query for i in range(2)] == ["the triangle and the square", "both shapes"]
    raw = RefCocoDataset(root, "val", name="refcocog", sentence_field="raw")
    assert raw[2].query == "the Round one"


def test_polygon_parts_are_merged_and_match_an_independent_rasteriser(root: Path) -> None:
    sample = RefCocoDataset(root, "val")[0]
    assert sample.mask.dtype == np.uint8 and sample.mask.shape == (H, W) and sample.image.shape == (H, W, 3)
    assert set(np.unique(sample.mask)) == {0, 1}
    triangle = list(zip(TRIANGLE[::2], TRIANGLE[1::2], strict=True))
    square = list(zip(SQUARE[::2], SQUARE[1::2], strict=True))
    in_square, near_square = point_in_polygon(square, H, W)
    assert sample.mask[in_square & ~near_square].all()
    # The parts do not touch: away from the square, the mask is exactly the triangle.
    assert_matches_polygon(np.where(in_square | near_square, 0, sample.mask), triangle)
    assert sample.gt_box == (4.0, 3.0, 46.0, 36.0)
    assert sample.meta["ann_id"] == 1 and sample.meta["image_id"] == 1


def test_uncompressed_and_compressed_rles_decode_exactly(root: Path) -> None:
    ds = RefCocoDataset(root, "val")
    np.testing.assert_array_equal(ds[ds.index_of("11_110")].mask, disk(20, 20, 9))
    np.testing.assert_array_equal(ds[ds.index_of("12_120")].mask, disk(12, 30, 7))


def test_split_scheme_defaults_and_override(root: Path, tmp_path: Path) -> None:
    refs = [make_ref(1, 4, 2, "testA", ["left"]), make_ref(2, 4, 2, "testB", ["right"])]
    anns = [annotation(4, 2, [[1, 1, 8, 1, 8, 8, 1, 8]], [1, 1, 7, 7])]
    write_refer(root, "refcoco", "unc", refs, {2: (H, W)}, anns, write_images=False)
    write_refer(root, "refcoco+", "unc", refs[:1], {2: (H, W)}, anns, write_images=False)
    assert load("refcoco", root=str(root), split="testB").sample_ids == ["2_20"]
    assert load("refcoco+", root=str(root), split="testA")[0].mask[1:8, 1:8].all()
    with pytest.raises(DatasetError, match=r"refs\(umd\)\.p: refs file not found \(found: refs\(unc\)\.p\)"):
        load("refcoco", root=str(root), split="testA", split_by="umd")
    with pytest.raises(DatasetError, match=r"has no split 'testA' \(it has: train, val\)"):
        load("refcocog", root=str(root), split="testA")


def test_index_needs_only_the_refs_file(root: Path) -> None:
    (root / "refcocog" / "instances.json").write_text("{ truncated")
    ds = RefCocoDataset(root, "val")
    assert len(ds) == 4
    with pytest.raises(DatasetError, match=r"instances\.json: does not parse as JSON"):
        ds[0]


def test_missing_image_and_bad_polygon_raise_on_access_naming_the_file(root: Path) -> None:
    data = json.loads((root / "refcocog" / "instances.json").read_text())
    data["annotations"][2]["segmentation"] = [[1, 1, 5, 5]]  # two points
    (root / "refcocog" / "instances.json").write_text(json.dumps(data))
    (root / "images/mscoco/images/train2014" / coco_image_name(1)).unlink()
    ds = RefCocoDataset(root, "val")
    with pytest.raises(DatasetError, match=coco_image_name(1) + ": image file missing"):
        ds[0]
    with pytest.raises(DatasetError, match=r"instances\.json annotation 3: polygon 0 has 2 points \(needs 3\)"):
        ds[3]


def test_verify_with_strict_false_skips_bad_samples_with_one_warning(root: Path) -> None:
    (root / "images/mscoco/images/train2014" / coco_image_name(2)).write_bytes(b"\xff\xd8 corrupt")
    with pytest.raises(DatasetError, match="image does not decode"):
        RefCocoDataset(root, "val", verify=True)
    with pytest.warns(DatasetWarning, match="skipped 1 of 4"):
        ds = RefCocoDataset(root, "val", verify=True, strict=False)
    assert ds.sample_ids == ["10_100", "10_101", "11_110"]


def test_malformed_refs_are_skipped_at_index_time(root: Path) -> None:
    refs = [make_ref(10, 1, 1, "val", ["ok"]), {"ref_id": 11, "split": "val"}, make_ref(12, 3, 2, "val", [])]
    write_refer(root, "refcocog", "umd", refs, {1: (H, W), 2: (H, W)}, [], write_images=False)
    with pytest.raises(DatasetError, match="lacks ref_id"):
        RefCocoDataset(root, "val")
    with pytest.warns(DatasetWarning, match="skipped 2 of 3"):
        assert RefCocoDataset(root, "val", strict=False).sample_ids == ["10_100"]


def test_image_size_mismatch_is_reported(root: Path) -> None:
    write_jpeg(root / "images/mscoco/images/train2014" / coco_image_name(2), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(DatasetError, match="image is 10x10, instances.json says 50x40"):
        RefCocoDataset(root, "val")[3]


def test_missing_dataset_folder(tmp_path: Path) -> None:
    tmp_path.joinpath("images").mkdir()
    with pytest.raises(DatasetError, match="refcoco folder not found"):
        RefCocoDataset(tmp_path, "val", name="refcoco")

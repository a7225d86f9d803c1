"""Seg-Zero's datasets copies: ReasonSeg_val / _test and the refCOCOg_9k_840 training set (parquet, arrow)."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path

import datasets
import huggingface_hub.constants
import numpy as np
import pytest
from dataset_writers import noise_image, write_segzero_train

from segzero_env.datasets import load
from segzero_env.datasets.errors import DatasetError, DatasetWarning
from segzero_env.datasets.reasonseg_hf import ReasonSegHFDataset
from segzero_env.datasets.segzero_train import SegZeroTrainDataset, parse_solution

REASONSEG_FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "text": datasets.Value("string"),
        "mask": datasets.List(datasets.List(datasets.Value("bool"))),
        "image_id": datasets.Value("string"),
        "ann_id": datasets.Value("string"),
        "img_height": datasets.Value("int64"),
        "img_width": datasets.Value("int64"),
    }
)
SIZES = [(24, 32), (30, 20), (16, 16)]


def reasonseg_table(image_ids: list[str]) -> tuple[datasets.Dataset, list[np.ndarray], list[np.ndarray]]:
    images, masks = [], []
    for k, (h, w) in enumerate(SIZES):
        images.append(noise_image(h, w, k))
        mask = np.zeros((h, w), bool)
        mask[k : k + 5, 2 : 2 + 3 * (k + 1)] = True
        masks.append(mask)
    table = datasets.Dataset.from_dict(
        {
            "image": images,
            "text": [f"query number {k}" for k in range(3)],
            "mask": [m.tolist() for m in masks],
            "image_id": image_ids,
            "ann_id": ["a0", "a1", "a2"],
            "img_height": [h for h, _ in SIZES],
            "img_width": [w for _, w in SIZES],
        },
        features=REASONSEG_FEATURES,
    )
    return table, images, masks


@pytest.fixture()
def cache(tmp_path: Path) -> str:
    return str(tmp_path / "hf-cache")


def test_parquet_snapshot_reads_the_single_test_split_as_val(tmp_path: Path, cache: str) -> None:
    table, images, masks = reasonseg_table(["stem_a", "stem_b", "stem_c"])
    folder = tmp_path / "ReasonSeg_val"
    table.to_parquet(str(folder / "data" / "test-00000-of-00001.parquet"))
    ds = load("reasonseg-hf", root=str(folder), split="val", cache_dir=cache)
    assert ds.hf_split == "test" and len(ds) == 3 and ds.sample_ids == ["stem_a", "stem_b", "stem_c"]
    for k in range(3):
        sample = ds[k]
        assert sample.mask.dtype == np.uint8 and set(np.unique(sample.mask)) <= {0, 1}
        np.testing.assert_array_equal(sample.mask, masks[k].astype(np.uint8))
        np.testing.assert_array_equal(sample.image, images[k])
        assert sample.query == f"query number {k}" and sample.query_kind is None
        assert sample.meta["ignore_as_target"] is True


def test_save_to_disk_copy_and_duplicate_image_ids(tmp_path: Path) -> None:
    table, _, masks = reasonseg_table(["same", "same", "other"])
    datasets.DatasetDict({"test": table}).save_to_disk(str(tmp_path / "copy"))
    ds = ReasonSegHFDataset(tmp_path / "copy", "test")
    assert ds.sample_ids == ["same_a0", "same_a1", "other_a2"]
    np.testing.assert_array_equal(ds[ds.index_of("same_a1")].mask, masks[1].astype(np.uint8))
    with pytest.raises(DatasetError, match=r"has no split 'val' \(it has: test\)"):
        ReasonSegHFDataset(tmp_path / "copy", "val", hf_split="val")


def test_missing_columns_and_bad_masks(tmp_path: Path, cache: str) -> None:
    table, _, _ = reasonseg_table(["a", "b", "c"])
    table.remove_columns(["mask"]).save_to_disk(str(tmp_path / "nomask"))
    with pytest.raises(DatasetError, match=r"nomask: lacks column\(s\) mask"):
        ReasonSegHFDataset(tmp_path / "nomask", "val")
    bad = table.map(lambda row, i: {"mask": [[True]] if i == 1 else row["mask"]}, with_indices=True)
    bad.save_to_disk(str(tmp_path / "badmask"))
    ds = ReasonSegHFDataset(tmp_path / "badmask", "val")
    with pytest.raises(DatasetError, match=r"row 1 \(b\): mask is \(1, 1\), image is \(30, 20\)"):
        ds[1]
    with pytest.warns(DatasetWarning, match="skipped 1 of 3"):
        assert ReasonSegHFDataset(tmp_path / "badmask", "val", verify=True, strict=False).sample_ids == ["a", "c"]


def test_unreachable_hub_id_says_how_to_download(monkeypatch: pytest.MonkeyPatch, cache: str) -> None:
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetError, match="nobody/ReasonSeg_val: cannot be opened.*download it first"):
        ReasonSegHFDataset("nobody/ReasonSeg_val", "val", cache_dir=cache)


# --- refCOCOg_9k_840 ------------------------------------------------------------------------

TRAIN_SIZES = [(500, 1000), (30, 10), (840, 840)]  # (height, width)
SOLUTIONS = [
    "<box>(10,20),(110,220)</box><points>(30,40),(50,60)</points>",
    '[{"bbox_2d": [42, 126, 420, 840], "point_2d": [42, 126]}]',
    '[{"bbox": [0, 0, 839, 839], "points_1": [1, 2], "points_2": [3, 4]}, {"bbox_2d": [5, 5, 6, 6]}]',
]


def round_half_up_exact(v: float, size: int) -> int:
    return math.floor(Fraction(v) * size / 840 + Fraction(1, 2))


def write_train(folder: Path, solutions: list[str]) -> None:
    n = len(solutions)
    write_segzero_train(
        folder,
        [f"r{k}" for k in range(n)],
        ["the left cat", "a blue mug", "the tree"][:n],
        solutions,
        [noise_image(840, 840, k) for k in range(n)],
        TRAIN_SIZES[:n],
    )


def test_training_set_gt_in_the_original_frame(tmp_path: Path, cache: str) -> None:
    write_train(tmp_path / "refCOCOg_9k_840", SOLUTIONS)
    ds = load("segzero-train", root=str(tmp_path / "refCOCOg_9k_840"), split="train", cache_dir=cache)
    assert ds.has_masks is False and ds.sample_ids == ["r0", "r1", "r2"]
    for k, (h, w) in enumerate(TRAIN_SIZES):
        sample = ds[k]
        assert sample.mask is None and sample.image.shape == (h, w, 3)
        (box, points), *rest = parse_solution(SOLUTIONS[k])
        assert sample.gt_box == tuple(round_half_up_exact(v, w if i % 2 == 0 else h) for i, v in enumerate(box))
        assert sample.gt_points == tuple((round_half_up_exact(x, w), round_half_up_exact(y, h)) for x, y in points)
        assert len(sample.meta["gt_objects"]) == 1 + len(rest)
    # 42 * 10 / 840 = 0.5 rounds UP to 1 (Python's round would give 0); 126 * 10 / 840 = 1.5 -> 2.
    assert ds[1].gt_box[0] == 1 and ds[1].gt_points == ((1, 5),)
    assert ds[0].gt_box == (12, 12, 131, 131) and ds[0].query == "the left cat"


def test_bad_solutions(tmp_path: Path, cache: str) -> None:
    write_train(tmp_path / "t", [SOLUTIONS[0], "<box>(1,2)</box>", '[{"bbox_2d": [1, 2, 3]}]'])
    with pytest.raises(DatasetError, match=r"row 1 \(id r1\): 'solution' '<box>\(1,2\)</box>' is neither"):
        SegZeroTrainDataset(tmp_path / "t", cache_dir=cache)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = SegZeroTrainDataset(tmp_path / "t", cache_dir=cache, strict=False)
    assert ds.sample_ids == ["r0"]
    assert [str(w.message) for w in caught if w.category is DatasetWarning][0].count("skipped 2 of 3") == 1


def test_parse_solution_forms() -> None:
    assert parse_solution(" <box>( 1.5 , 2 ),(3,4)</box>\n<points>(5,6),(7,8)</points> ") == [
        ((1.5, 2.0, 3.0, 4.0), ((5.0, 6.0), (7.0, 8.0)))
    ]
    assert parse_solution('{"bbox": [1, 2, 3, 4], "points_1": [1, 1], "points_2": [2, 2]}')[0][1] == ((1, 1), (2, 2))
    for bad in ("", "[]", '[{"point_2d": [1, 2]}]', '[{"bbox_2d": [1, 2, "x", 4]}]', "<box>(1,2),(3,4)</box>"):
        with pytest.raises(ValueError):
            parse_solution(bad)

"""ReasonSeg (LISA layout): masks against independent rasterisations, queries, ids, bad data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from dataset_writers import assert_matches_polygon, rect, write_reasonseg_item

from segzero_env.datasets import load
from segzero_env.datasets.errors import DatasetError, DatasetWarning, DegeneratePolygonWarning
from segzero_env.datasets.reasonseg import ReasonSegDataset, rasterize_shapes

H, W = 30, 40
# The fixture's cp1252 file is deliberate; test_datasets_bad_data.py checks the warning it raises.
pytestmark = pytest.mark.filterwarnings("ignore::segzero_env.datasets.errors.DatasetEncodingWarning")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    val = tmp_path / "val"
    # Small ignore region listed BEFORE the big target and a flag over everything: the loader must
    # drop the flag, draw the big target first, then the ignore region over it.
    write_reasonseg_item(
        val,
        "a_target_with_hole",
        (H, W),
        [rect("ignore", 12.7, 10.2, 15.9, 13.8), rect("flag", 0, 0, 39, 29), rect("target", 5.9, 4.9, 30.9, 20.5)],
        texts=["where is the hole", "second text", "third text"],
        is_sentence=False,
    )
    # Big ignore region with a small target inside it, in cp1252 (not UTF-8) with accents.
    write_reasonseg_item(
        val,
        "b_cp1252",
        (H, W),
        [rect("target", 10, 10, 14, 14), rect("Ignore_region", 2, 2, 35, 25)],
        texts=["the café sign a naïve person would read first"],
        is_sentence=True,
        encoding="cp1252",
        seed=1,
    )
    triangle = [[3.0, 2.0], [36.0, 6.0], [12.0, 27.0]]
    write_reasonseg_item(val, "c_triangle", (H, W), [{"label": "target", "points": triangle}], seed=2)
    return tmp_path


def expected_rect(x1: float, y1: float, x2: float, y2: float) -> tuple[slice, slice]:
    """Rows / cols of a rectangle after int32 truncation, outline included."""
    return slice(int(y1), int(y2) + 1), slice(int(x1), int(x2) + 1)


def test_masks_follow_the_reference_rules(root: Path) -> None:
    ds = load("reasonseg", root=str(root), split="val")
    assert len(ds) == 3 and ds.sample_ids == ["a_target_with_hole", "b_cp1252", "c_triangle"]
    a = ds[0]
    expected = np.zeros((H, W), np.uint8)
    expected[expected_rect(5.9, 4.9, 30.9, 20.5)] = 1
    expected[expected_rect(12.7, 10.2, 15.9, 13.8)] = 255
    assert a.mask.dtype == np.uint8 and a.mask.shape == (H, W)
    np.testing.assert_array_equal(a.mask, expected)
    assert a.image.shape == (H, W, 3) and a.image.dtype == np.uint8
    assert a.query == "where is the hole" and a.query_kind == "short"

    b = ds[ds.index_of("b_cp1252")]
    expected = np.zeros((H, W), np.uint8)
    expected[expected_rect(2, 2, 35, 25)] = 255
    expected[expected_rect(10, 10, 14, 14)] = 1
    np.testing.assert_array_equal(b.mask, expected)
    assert b.query == "the café sign a naïve person would read first" and b.query_kind == "long"


def test_polygon_interior_matches_an_independent_rasteriser(root: Path) -> None:
    sample = ReasonSegDataset(root, "val")[2]
    truncated = [[3, 2], [36, 6], [12, 27]]
    assert set(np.unique(sample.mask)) == {0, 1}
    assert_matches_polygon(sample.mask, truncated)


def test_truncation_not_rounding() -> None:
    mask = rasterize_shapes([rect("target", 1.9, 1.9, 3.9, 3.9)], 6, 6)
    assert mask[1, 1] == 1 and mask[3, 3] == 1 and mask[4, 4] == 0 and mask[1:4, 1:4].all()


def test_all_texts_gives_one_sample_per_text(root: Path) -> None:
    ds = ReasonSegDataset(root, "val", all_texts=True)
    assert ds.sample_ids[:3] == ["a_target_with_hole_0", "a_target_with_hole_1", "a_target_with_hole_2"]
    assert len(ds) == 5
    assert ds[1].query == "second text" and ds[1].meta["text_index"] == 1
    np.testing.assert_array_equal(ds[0].mask, ds[2].mask)


def test_root_may_be_the_split_folder(root: Path) -> None:
    assert len(ReasonSegDataset(root / "val", "val")) == 3


def test_index_does_not_decode_images(root: Path) -> None:
    # A corrupt image is only found on access: the index builds, ds[i] names the file.
    (root / "val" / "c_triangle.jpg").write_bytes(b"not a jpeg at all")
    ds = ReasonSegDataset(root, "val")
    assert len(ds) == 3
    ds[0]
    with pytest.raises(DatasetError, match=r"c_triangle\.jpg: image does not decode"):
        ds[2]


def test_verify_finds_corrupt_images_and_strict_false_skips_them(root: Path) -> None:
    (root / "val" / "c_triangle.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="c_triangle.jpg: image file is empty"):
        ReasonSegDataset(root, "val", verify=True)
    with pytest.warns(DatasetWarning, match="skipped 1 of 3"):
        ds = ReasonSegDataset(root, "val", verify=True, strict=False)
    assert ds.sample_ids == ["a_target_with_hole", "b_cp1252"]


def test_bad_files_raise_naming_the_file_or_are_skipped_with_one_warning(root: Path) -> None:
    val = root / "val"
    write_reasonseg_item(val, "d_broken", (H, W), [])
    (val / "d_broken.json").write_text('{"text": ["x"], "shapes": [')
    write_reasonseg_item(val, "e_one_point", (H, W), [{"label": "target", "points": [[1, 1]]}])
    (val / "f_orphan.json").write_text(json.dumps({"text": ["x"], "shapes": []}))
    write_reasonseg_item(val, "g_no_text", (H, W), [rect("target", 1, 1, 3, 3)], texts=[])
    with pytest.raises(DatasetError, match=r"d_broken\.json: does not parse as JSON"):
        ReasonSegDataset(root, "val")
    (val / "d_broken.json").write_text(json.dumps({"text": ["x"], "shapes": []}))
    with pytest.raises(DatasetError, match=r"e_one_point\.json: shape 0 .* 1 points \(needs 2\)"):
        ReasonSegDataset(root, "val")
    (val / "d_broken.json").write_text("{")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ReasonSegDataset(root, "val", strict=False)
    dataset_warnings = [w for w in caught if issubclass(w.category, DatasetWarning)]
    assert len(dataset_warnings) == 1
    assert "skipped 4 of 7" in str(dataset_warnings[0].message)
    assert ds.sample_ids == ["a_target_with_hole", "b_cp1252", "c_triangle"]
    assert {Path(p).name for p, _ in ds.skip_log.problems} == {
        "d_broken.json",
        "e_one_point.json",
        "f_orphan.json",
        "g_no_text.json",
    }


def test_missing_split_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match=r"val: split folder for 'val' not found \(found: train\)"):
        ReasonSegDataset(tmp_path, "val")
    with pytest.raises(DatasetError, match="data folder does not exist"):
        ReasonSegDataset(tmp_path / "nowhere", "val")


def test_unknown_id_raises_key_error(root: Path) -> None:
    with pytest.raises(KeyError, match="nope"):
        ReasonSegDataset(root, "val").index_of("nope")


def test_a_two_point_polygon_is_drawn_as_lisa_draws_it_with_a_warning(root: Path) -> None:
    val = root / "val"
    write_reasonseg_item(val, "e_two_points", (H, W), [{"label": "target", "points": [[1, 1], [5.9, 5]]}])
    with pytest.warns(DegeneratePolygonWarning, match=r"e_two_points\.json: shape 0 .* 2 points; drawn as a line"):
        ds = ReasonSegDataset(root, "val")
    with pytest.warns(DegeneratePolygonWarning):  # read again with the sample
        mask = ds[ds.sample_ids.index("e_two_points")].mask
    # Points truncated to (1, 1) and (5, 5): the diagonal pixels, drawn by the outline and by the fill.
    expected = np.zeros((H, W), np.uint8)
    for k in range(1, 6):
        expected[k, k] = 1
    np.testing.assert_array_equal(mask, expected)

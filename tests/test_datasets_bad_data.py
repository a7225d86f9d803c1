"""Hostile files: every failure while loading a sample is a DatasetError naming the file, and strict=False skips it."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from dataset_writers import (
    coco_image_name,
    jpeg_claiming_size,
    make_ref,
    nested_json,
    rect,
    rle_counts,
    write_reasonseg_item,
    write_refer,
)
from pycocotools import mask as mask_utils

from segzero_env.datasets.check import check_split, format_report, run_check
from segzero_env.datasets.errors import DatasetEncodingWarning, DatasetError, DatasetWarning
from segzero_env.datasets.images import image_header_size, max_image_pixels
from segzero_env.datasets.reasonseg import ReasonSegDataset
from segzero_env.datasets.refcoco import RefCocoDataset

H, W = 30, 40
TARGET = [rect("target", 5, 5, 20, 20)]


@pytest.fixture()
def reasonseg(tmp_path: Path) -> Path:
    write_reasonseg_item(tmp_path / "val", "a_good", (H, W), TARGET)
    return tmp_path


def add(root: Path, stem: str, shapes: list, **kwargs: object) -> None:
    write_reasonseg_item(root / "val", stem, (H, W), shapes, **kwargs)


def loaded_quietly(root: Path, **kwargs: object) -> ReasonSegDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        return ReasonSegDataset(root, "val", strict=False, **kwargs)


# ReasonSeg annotations -------------------------------------------------------------------------


def test_json_nested_100000_deep_is_a_dataset_error_and_skipped(reasonseg: Path) -> None:
    add(reasonseg, "b_deep", TARGET)
    (reasonseg / "val" / "b_deep.json").write_text(nested_json(100_000))
    with pytest.raises(DatasetError, match=r"b_deep\.json: .*nested too deeply"):
        ReasonSegDataset(reasonseg, "val")
    assert loaded_quietly(reasonseg).sample_ids == ["a_good"]


@pytest.mark.parametrize(
    ("points", "why"),
    [
        ([[1, 1], ["5", 1], [5, 5]], "not \\[x, y\\] number pairs"),
        ([[1, 1], [True, 1], [5, 5]], "not \\[x, y\\] number pairs"),
        ([[1, 1], [2e9, 1], [-2e9, 5]], "coordinates beyond"),
    ],
)
def test_string_boolean_and_huge_coordinates_are_refused_while_indexing(
    reasonseg: Path, points: list, why: str
) -> None:
    add(reasonseg, "b_bad", [{"label": "target", "points": points}])
    with pytest.raises(DatasetError, match=rf"b_bad\.json: shape 0 .*{why}"):
        ReasonSegDataset(reasonseg, "val")
    assert loaded_quietly(reasonseg).sample_ids == ["a_good"]


def test_coordinates_far_outside_the_image_are_refused_on_access(reasonseg: Path) -> None:
    # Within the index-time bound, but several image widths away: found when the image size is known.
    add(reasonseg, "b_far", [{"label": "target", "points": [[1, 1], [5000, 1], [5, 5]]}])
    add(reasonseg, "c_edge", [{"label": "target", "points": [[-3, -2], [W + 2.5, 0], [W + 2, H + 3]]}])
    ds = ReasonSegDataset(reasonseg, "val")
    with pytest.raises(DatasetError, match=r"b_far\.json: shape 0 .*far outside the 40x30 image"):
        ds[1]
    edge = ds[2].mask  # annotators' points a few pixels past the border are normal and kept
    assert edge[0, 0] == 1 and edge[H - 1, W - 1] == 1
    assert loaded_quietly(reasonseg, verify=True).sample_ids == ["a_good", "c_edge"]


def test_is_sentence_must_be_a_boolean(reasonseg: Path) -> None:
    add(reasonseg, "b_string", TARGET)
    doc = json.loads((reasonseg / "val" / "b_string.json").read_text())
    doc["is_sentence"] = "false"
    (reasonseg / "val" / "b_string.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"b_string\.json: 'is_sentence' is 'false', not true or false"):
        ReasonSegDataset(reasonseg, "val")
    assert loaded_quietly(reasonseg).sample_ids == ["a_good"]


def test_annotations_that_are_not_utf8_are_read_as_cp1252_with_one_warning(reasonseg: Path) -> None:
    add(reasonseg, "b_cp1252", TARGET, texts=["the café"], encoding="cp1252")
    add(reasonseg, "c_cp1252", TARGET, texts=["a naïve query"], encoding="cp1252")
    with pytest.warns(DatasetEncodingWarning, match=r"2 annotation files are not UTF-8 .*b_cp1252\.json") as caught:
        ds = ReasonSegDataset(reasonseg, "val")
    assert len(caught) == 1
    assert [ds[k].query for k in range(3)] == ["the thing", "the café", "a naïve query"]
    assert [Path(p).name for p in ds.cp1252_files] == ["b_cp1252.json", "c_cp1252.json"]


# Images ----------------------------------------------------------------------------------------


def test_header_size_is_read_without_decoding() -> None:
    assert image_header_size(jpeg_claiming_size(20000, 20000)) == (20000, 20000)
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (7, 5)).save(png, "PNG")
    assert image_header_size(png.getvalue()) == (7, 5)
    assert image_header_size(b"not an image") is None


@pytest.mark.parametrize("side", [20000, 60000])
def test_images_whose_header_claims_too_many_pixels_are_refused_before_decoding(reasonseg: Path, side: int) -> None:
    add(reasonseg, "b_bomb", TARGET)
    (reasonseg / "val" / "b_bomb.jpg").write_bytes(jpeg_claiming_size(side, side))
    assert (reasonseg / "val" / "b_bomb.jpg").stat().st_size < 2000
    ds = ReasonSegDataset(reasonseg, "val")
    with pytest.raises(DatasetError, match=rf"b_bomb\.jpg: image header claims {side}x{side} .* limit of 100,000,000"):
        ds[1]
    assert loaded_quietly(reasonseg, verify=True).sample_ids == ["a_good"]


def test_pixel_limit_is_set_by_an_environment_variable(reasonseg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGZERO_MAX_IMAGE_PIXELS", "1000")
    assert max_image_pixels() == 1000
    with pytest.raises(DatasetError, match=r"a_good\.jpg: image header claims 40x30 .*SEGZERO_MAX_IMAGE_PIXELS"):
        ReasonSegDataset(reasonseg, "val")[0]
    monkeypatch.setenv("SEGZERO_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="SEGZERO_MAX_IMAGE_PIXELS='lots' is not a positive whole number"):
        max_image_pixels()


def test_decoder_refusals_are_dataset_errors(reasonseg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With the package's limit raised, OpenCV's own (2**30 pixels) refuses the header: no bare cv2.error.
    monkeypatch.setenv("SEGZERO_MAX_IMAGE_PIXELS", str(4 * 10**9))
    add(reasonseg, "b_bomb", TARGET)
    (reasonseg / "val" / "b_bomb.jpg").write_bytes(jpeg_claiming_size(60000, 60000))
    with pytest.raises(DatasetError, match=r"b_bomb\.jpg: image does not decode \(OpenCV"):
        ReasonSegDataset(reasonseg, "val")[1]


# RefCOCO instances ------------------------------------------------------------------------------


def refer_root(tmp_path: Path, segmentations: list[object]) -> Path:
    good = [[2, 2, 12, 2, 12, 12, 2, 12]]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "segmentation": good}]
    anns += [
        {"id": k + 2, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "segmentation": seg}
        for k, seg in enumerate(segmentations)
    ]
    refs = [make_ref(k + 1, a["id"], 1, "val", [f"sentence {k}"]) for k, a in enumerate(anns)]
    write_refer(tmp_path, "refcocog", "umd", refs, {1: (H, W)}, anns)
    return tmp_path


def verified_quietly(root: Path) -> RefCocoDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        return RefCocoDataset(root, "val", verify=True, strict=False)


def disk_counts() -> list[int]:
    yy, xx = np.mgrid[:H, :W]
    return rle_counts((yy - 15) ** 2 + (xx - 20) ** 2 <= 49)


@pytest.mark.parametrize(
    ("counts", "why"),
    [
        ([10, H * W], "counts sum to 1210, not 40 x 30 = 1200"),
        ([10, 50], "counts sum to 60, not 40 x 30 = 1200"),
        ([10, -5, H * W - 5], "counts hold -5"),
        ([10, "5", H * W - 15], "counts hold '5'"),
    ],
)
def test_uncompressed_rle_counts_must_cover_the_image_exactly(tmp_path: Path, counts: list, why: str) -> None:
    ds = RefCocoDataset(refer_root(tmp_path, [{"size": [H, W], "counts": counts}]), "val")
    assert ds[0].mask.sum() > 0
    with pytest.raises(DatasetError, match=rf"instances\.json annotation 2: RLE {why}"):
        ds[1]
    assert verified_quietly(tmp_path).sample_ids == ["1_10"]


@pytest.mark.parametrize("counts", ["\x7f", "i\x7f", "0P", "ab!c", "zzzzzz"])
def test_garbage_compressed_rle_is_refused_so_ground_truth_is_deterministic(tmp_path: Path, counts: str) -> None:
    good = mask_utils.encode(np.asfortranarray(np.eye(H, W, dtype=np.uint8)))
    good_counts = good["counts"].decode("ascii")
    segmentations = [{"size": [H, W], "counts": counts}, good | {"counts": good_counts}]
    ds = RefCocoDataset(refer_root(tmp_path, segmentations), "val")
    for _ in range(3):
        with pytest.raises(DatasetError, match=r"instances\.json annotation 2: compressed RLE .* is not valid"):
            ds[1]
    np.testing.assert_array_equal(ds[2].mask, np.eye(H, W, dtype=np.uint8))


def test_compressed_rle_counts_are_checked_like_uncompressed_ones() -> None:
    from segzero_env.datasets.coco_masks import rle_string_counts

    mask = np.zeros((H, W), np.uint8)
    mask[3:9, 4:30] = 1
    encoded = mask_utils.encode(np.asfortranarray(mask))["counts"].decode("ascii")
    assert rle_string_counts(encoded) == rle_counts(mask)


def test_polygons_far_outside_the_image_and_non_numeric_sizes_are_refused(tmp_path: Path) -> None:
    root = refer_root(tmp_path, [[[1, 1, 2e9, 1, 5, -2e9]], {"size": [str(H), W], "counts": disk_counts()}])
    ds = RefCocoDataset(root, "val")
    with pytest.raises(DatasetError, match=r"annotation 2: polygon 0 lies far outside the 40x30 image"):
        ds[1]
    with pytest.raises(DatasetError, match=r"annotation 3: RLE size \['30', 40\] is not \[height, width\]"):
        ds[2]
    assert verified_quietly(root).sample_ids == ["1_10"]


def test_an_image_entry_without_height_fails_only_its_own_samples(tmp_path: Path) -> None:
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1, 6, 1, 6, 6]]},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1, 6, 1, 6, 6]]},
        {"id": 3, "image_id": 3, "category_id": 1, "bbox": ["a", 1, 5, 5], "segmentation": [[1, 1, 6, 1, 6, 6]]},
    ]
    refs = [make_ref(k, k, k, "val", [f"s{k}"]) for k in (1, 2, 3)]
    write_refer(tmp_path, "refcocog", "umd", refs, {1: (H, W), 2: (H, W), 3: (H, W)}, anns)
    instances = tmp_path / "refcocog" / "instances.json"
    doc = json.loads(instances.read_text())
    del doc["images"][1]["height"]
    doc["images"].append({"file_name": "no id at all"})
    instances.write_text(json.dumps(doc))
    ds = RefCocoDataset(tmp_path, "val")
    assert ds[0].mask.sum() > 0
    with pytest.raises(DatasetError, match=r"instances\.json: image 2 entry lacks a positive whole 'height'"):
        ds[1]
    with pytest.raises(DatasetError, match=r"instances\.json annotation 3: 'bbox' is not 4 numbers"):
        ds[2]
    assert verified_quietly(tmp_path).sample_ids == ["1_10"]


def test_instances_nested_too_deeply_is_a_dataset_error(tmp_path: Path) -> None:
    root = refer_root(tmp_path, [])
    (root / "refcocog" / "instances.json").write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DatasetError, match=r"instances\.json: .*nested too deeply"):
        RefCocoDataset(root, "val")[0]


def test_image_sizes_in_instances_are_held_to_the_pixel_limit(tmp_path: Path) -> None:
    root = refer_root(tmp_path, [])
    instances = root / "refcocog" / "instances.json"
    doc = json.loads(instances.read_text())
    doc["images"][0]["height"] = doc["images"][0]["width"] = 10**6
    instances.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"image 1 entry claims 1000000x1000000 .* limit of 100,000,000"):
        RefCocoDataset(root, "val")[0]


# segzero data check ---------------------------------------------------------------------------


def test_data_check_counts_every_kind_of_bad_file_and_never_crashes(reasonseg: Path) -> None:
    add(reasonseg, "b_deep", TARGET)
    (reasonseg / "val" / "b_deep.json").write_text(nested_json(100_000))
    add(reasonseg, "c_bomb", TARGET)
    (reasonseg / "val" / "c_bomb.jpg").write_bytes(jpeg_claiming_size(60000, 60000))
    add(reasonseg, "d_bomb", TARGET)
    (reasonseg / "val" / "d_bomb.jpg").write_bytes(jpeg_claiming_size(20000, 20000))
    add(reasonseg, "e_huge", [{"label": "target", "points": [[1, 1], [2e9, 1], [-2e9, 5]]}])
    add(reasonseg, "f_far", [{"label": "target", "points": [[1, 1], [5000, 1], [5, 5]]}])
    add(reasonseg, "g_text", [{"label": "target", "points": [[1, 1], ["5", 1], [5, 5]]}])
    add(reasonseg, "h_bool", [{"label": "target", "points": [[1, 1], [True, 1], [5, 5]]}])
    add(reasonseg, "i_kind", TARGET)
    (reasonseg / "val" / "i_kind.json").write_text('{"text": ["x"], "is_sentence": "false", "shapes": []}')
    add(reasonseg, "j_cp1252", TARGET, texts=["the café"], encoding="cp1252")
    report = check_split("reasonseg", str(reasonseg), "val")
    assert report.samples == 2 and report.skipped == 8 and report.cp1252 == 1
    names = sorted(Path(p).name for p, _ in report.problems)
    assert names == [
        "b_deep.json",
        "c_bomb.jpg",
        "d_bomb.jpg",
        "e_huge.json",
        "f_far.json",
        "g_text.json",
        "h_bool.json",
        "i_kind.json",
    ]
    assert "read as cp1252 (not UTF-8): 1" in format_report(report)


def test_data_check_on_refcoco_counts_bad_rles_and_image_entries(tmp_path: Path) -> None:
    root = refer_root(
        tmp_path,
        [{"size": [H, W], "counts": [10, H * W]}, {"size": [H, W], "counts": "\x7f"}, [[1, 1, 2e9, 1, 5, -2e9]]],
    )
    instances = root / "refcocog" / "instances.json"
    doc = json.loads(instances.read_text())
    doc["images"].append({"id": 9, "file_name": coco_image_name(9), "width": W})
    doc["annotations"].append(doc["annotations"][0] | {"id": 99, "image_id": 9})
    instances.write_text(json.dumps(doc))
    refs_path = root / "refcocog" / "refs(umd).p"
    import pickle

    refs = pickle.loads(refs_path.read_bytes()) + [make_ref(99, 99, 9, "val", ["no height"])]
    refs_path.write_bytes(pickle.dumps(refs))
    out = io.StringIO()
    assert run_check(str(root), "refcocog", out=out) == 1
    text = out.getvalue()
    assert "samples: 1\n" in text and "skipped: 4" in text
    assert "image 9 entry lacks a positive whole 'height'" in text


# Seg-Zero's datasets copies ------------------------------------------------------------------


def test_hf_copies_hold_images_and_sizes_to_the_pixel_limit(tmp_path: Path) -> None:
    import datasets
    from dataset_writers import noise_image, write_segzero_train
    from PIL import Image

    from segzero_env.datasets.reasonseg_hf import ReasonSegHFDataset
    from segzero_env.datasets.segzero_train import SegZeroTrainDataset

    good = io.BytesIO()
    Image.fromarray(noise_image(16, 16)).save(good, "JPEG", quality=50)
    table = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": good.getvalue()}, {"bytes": jpeg_claiming_size(20000, 20000)}],
            "text": ["a", "b"],
            "mask": [np.zeros((16, 16), bool).tolist()] * 2,
            "image_id": ["a", "b"],
            "ann_id": ["0", "1"],
            "img_height": [16, 20000],
            "img_width": [16, 20000],
        },
        features=datasets.Features(
            {
                "image": datasets.Image(),
                "text": datasets.Value("string"),
                "mask": datasets.List(datasets.List(datasets.Value("bool"))),
                "image_id": datasets.Value("string"),
                "ann_id": datasets.Value("string"),
                "img_height": datasets.Value("int64"),
                "img_width": datasets.Value("int64"),
            }
        ),
    )
    table.save_to_disk(str(tmp_path / "copy"))
    ds = ReasonSegHFDataset(tmp_path / "copy", "val")
    assert ds[0].image.shape == (16, 16, 3)
    with pytest.raises(DatasetError, match=r"row 1 \(b\): image header claims 20000x20000"):
        ds[1]
    with pytest.warns(DatasetWarning, match="skipped 1 of 2"):
        assert ReasonSegHFDataset(tmp_path / "copy", "val", verify=True, strict=False).sample_ids == ["a"]

    solution = "<box>(1,2),(30,40)</box><points>(5,6),(7,8)</points>"
    images = [noise_image(840, 840, k) for k in range(2)]
    sizes = [(30, 40), (10**5, 10**5)]
    write_segzero_train(tmp_path / "train", ["r0", "r1"], ["a", "b"], [solution] * 2, images, sizes)
    with pytest.raises(DatasetError, match=r"row 1 \(id r1\): img_width x img_height claim 100000x100000"):
        SegZeroTrainDataset(tmp_path / "train", cache_dir=str(tmp_path / "cache"))

import hashlib

import numpy as np
import pytest

from segzero_env.datasets import SegDataset, load
from segzero_env.datasets.shapes import DEFAULT_SIZES, HEIGHT_RANGE, WIDTH_RANGE, ShapesDataset, load_shapes
from segzero_env.datasets.shapes_resolver import is_unique, resolve
from segzero_env.datasets.shapes_vocab import COLOURS


def _digest(sample) -> str:
    return hashlib.sha1(sample.image.tobytes() + sample.mask.tobytes()).hexdigest()


def test_registered_loader_gives_protocol_dataset():
    ds = load("shapes", split="val", size=5, level=2)
    assert isinstance(ds, ShapesDataset)
    assert isinstance(ds, SegDataset)
    assert ds.name == "shapes" and ds.split == "val" and ds.has_masks is True
    assert len(ds) == 5


def test_default_sizes_and_size_override():
    for split, n in DEFAULT_SIZES.items():
        assert len(load_shapes(split=split)) == n
    assert len(load_shapes(split="train", size=7)) == 7
    assert DEFAULT_SIZES == {"train": 100_000, "val": 500, "test": 1_000}


def test_sample_ids_and_index_of_round_trip():
    ds = load_shapes(split="test", size=12, level=3)
    ids = ds.sample_ids
    assert len(ids) == 12
    assert ids[0] == "shapes-L3-test-000000"
    assert ids[-1] == "shapes-L3-test-000011"
    assert list(ids)[3] == ids[3]
    assert ids[2:4] == ["shapes-L3-test-000002", "shapes-L3-test-000003"]
    for i, sid in enumerate(ids):
        assert ds.index_of(sid) == i
    assert ds[4].sample_id == ids[4]
    with pytest.raises(KeyError, match="shapes-L3-test-000012"):
        ds.index_of("shapes-L3-test-000012")
    with pytest.raises(KeyError):
        ds.index_of("shapes-L2-test-000001")
    with pytest.raises(KeyError):
        ds.index_of("shapes-L3-test-1")
    with pytest.raises(IndexError):
        ds[12]
    assert ds[-1].sample_id == ids[11]


def test_seeded_ids_differ_from_default():
    ds = load_shapes(split="val", size=3, seed=7)
    assert ds.sample_ids[0] == "shapes-s7-L1-val-000000"
    assert ds.index_of("shapes-s7-L1-val-000002") == 2
    assert _digest(ds[0]) != _digest(load_shapes(split="val", size=3)[0])


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_image_and_mask_types(level):
    ds = load_shapes(split="val", size=20, level=level)
    shapes = set()
    for i in range(len(ds)):
        s = ds[i]
        h, w = s.image.shape[:2]
        assert s.image.dtype == np.uint8 and s.image.shape == (h, w, 3)
        assert s.mask.dtype == np.uint8 and s.mask.shape == (h, w)
        assert set(np.unique(s.mask)) == {0, 1}
        assert h != w
        assert HEIGHT_RANGE[0] - 1 <= h <= HEIGHT_RANGE[1] and WIDTH_RANGE[0] <= w <= WIDTH_RANGE[1]
        assert isinstance(s.query, str) and s.query.isascii() and s.query.isprintable()
        assert s.meta["level"] == level
        shapes.add((h, w))
    assert len(shapes) > 10  # sizes vary per sample


def test_generation_is_deterministic():
    a = load_shapes(split="train", size=50, level=3)
    b = load_shapes(split="train", size=50, level=3)
    for i in (0, 7, 49):
        sa, sb = a[i], b[i]
        assert np.array_equal(sa.image, sb.image)
        assert np.array_equal(sa.mask, sb.mask)
        assert sa.query == sb.query and sa.query_kind == sb.query_kind
        assert sa.meta == sb.meta
    # Access order does not matter: each sample has its own seed stream.
    assert np.array_equal(a[7].image, load_shapes(split="train", size=50, level=3)[7].image)


@pytest.mark.parametrize("level", [1, 3])
def test_splits_are_disjoint(level):
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        ds = load_shapes(split=split, size=150, level=level)
        for i in range(len(ds)):
            d = _digest(ds[i])
            assert d not in seen, f"{split}[{i}] repeats a scene from {seen.get(d)}"
            seen[d] = f"{split}[{i}]"
    assert len(seen) == 450


@pytest.mark.parametrize(("level", "count"), [(0, 200), (1, 300), (2, 300), (3, 300)])
def test_every_query_picks_exactly_one_object(level, count):
    ds = load_shapes(split="val", size=count, level=level)
    kinds, styles = set(), set()
    for i in range(count):
        s = ds[i]
        meta = s.meta
        objects, target = meta["objects"], meta["target_index"]
        assert is_unique(meta["query_struct"], objects, s.width, s.height, target), s.sample_id
        assert resolve(meta["query_struct"], objects, s.width, s.height, "lenient") == [target]
        kinds.add(s.query_kind)
        styles.add(meta["query_style"])
    assert kinds == {"short", "long"}
    if level == 3:
        assert {"ordinal", "negation", "functional", "count", "relation"} <= styles


@pytest.mark.parametrize("level", [0, 1])
def test_mask_is_exactly_the_target_colour_region_on_plain_levels(level):
    ds = load_shapes(split="train", size=40, level=level)
    for i in range(len(ds)):
        s = ds[i]
        obj = s.meta["objects"][s.meta["target_index"]]
        colour_region = np.all(s.image == np.asarray(COLOURS[obj["colour"]], dtype=np.uint8), axis=-1)
        # Plain levels give every object its own colour, so the colour region is the target alone.
        assert np.array_equal(colour_region, s.mask.astype(bool)), s.sample_id
        assert int(s.mask.sum()) == obj["visible_area"] == obj["area"]


@pytest.mark.parametrize("level", [2, 3])
def test_mask_matches_stored_object_geometry(level):
    ds = load_shapes(split="val", size=40, level=level)
    for i in range(len(ds)):
        s = ds[i]
        obj = s.meta["objects"][s.meta["target_index"]]
        ys, xs = np.nonzero(s.mask)
        assert int(s.mask.sum()) == obj["visible_area"] > 0
        assert [xs.min(), ys.min(), xs.max(), ys.max()] == obj["bbox"]
        x1, y1, x2, y2 = obj["extent"]
        assert x1 <= xs.min() and y1 <= ys.min() and xs.max() <= x2 and ys.max() <= y2
        assert obj["visible_area"] >= 0.6 * obj["area"]


def test_level_three_has_occlusion_and_texture():
    ds = load_shapes(split="val", size=60, level=3)
    occluded = 0
    for i in range(len(ds)):
        s = ds[i]
        occluded += sum(o["visible_area"] < o["area"] for o in s.meta["objects"])
        # Texture and noise: the target is not one flat colour.
        assert s.image[s.mask.astype(bool)].std(axis=0).max() > 3.0
    assert occluded > 0


def test_box_fill_is_clearly_worse_than_the_mask_for_round_shapes():
    ds = load_shapes(split="val", size=200, level=2)
    ious = []
    for i in range(len(ds)):
        s = ds[i]
        obj = s.meta["objects"][s.meta["target_index"]]
        if obj["shape"] not in ("circle", "triangle", "star"):
            continue
        x1, y1, x2, y2 = obj["bbox"]
        box = np.zeros_like(s.mask)
        box[y1 : y2 + 1, x1 : x2 + 1] = 1
        ious.append(s.mask.sum() / box.sum())
    assert len(ious) > 20
    assert np.mean(ious) < 0.8


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="split"):
        load_shapes(split="dev")
    with pytest.raises(ValueError, match="level"):
        load_shapes(level=5)
    with pytest.raises(ValueError, match="size"):
        load_shapes(size=0)
    with pytest.raises(TypeError, match="levle"):
        load_shapes(levle=2)
    with pytest.raises(TypeError):
        load_shapes(split="val", size=2)["0"]


def test_root_is_ignored():
    a = load_shapes(root="/nonexistent", split="val", size=2)
    b = load_shapes(split="val", size=2)
    assert np.array_equal(a[1].image, b[1].image)


def test_meta_survives_json_and_the_dataset_pickles():
    import json
    import pickle

    ds = load_shapes(split="val", size=30, level=3)
    for i in range(0, 30, 3):
        s = ds[i]
        meta = json.loads(json.dumps(s.meta))
        assert meta == s.meta
        assert is_unique(meta["query_struct"], meta["objects"], s.width, s.height, meta["target_index"])
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[5].image, ds[5].image)


def test_level_four_answers_are_proven_for_several_and_no_targets():
    ds = load_shapes(split="val", size=120, level=4)
    styles = set()
    for i in range(len(ds)):
        s = ds[i]
        meta = s.meta
        objects, struct, targets = meta["objects"], meta["query_struct"], meta["target_indices"]
        styles.add(meta["query_style"])
        for mode in ("strict", "lenient"):
            assert resolve(struct, objects, s.width, s.height, mode) == targets, s.sample_id
        # The mask is the union of exactly the targets' visible pixels, empty without a target.
        assert int(s.mask.sum()) == sum(int(objects[t]["visible_area"]) for t in targets), s.sample_id
        assert meta["no_target"] == (not targets) == (meta["query_style"] == "absent")
        if meta["query_style"] == "every":
            assert len(targets) >= 2 and s.query.lower().count("every") == 1
            members = [o for o, obj in enumerate(objects) if all(obj[k] == v for k, v in struct["filter"].items())]
            assert members == targets
        if meta["query_style"] == "absent":
            assert not s.mask.any() and meta["gt_boxes"] == [] and meta["target_index"] is None
    assert styles == {"attribute", "every", "absent"}

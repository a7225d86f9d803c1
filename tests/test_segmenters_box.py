import numpy as np
import pytest

from segzero_env.segmenters import make_segmenter
from segzero_env.segmenters.box import BoxSegmenter, fill_boxes
from segzero_env.types import Prompt


def prompt(box, points=(), labels=()):
    return Prompt(box=box, points=np.asarray(points, dtype=float).reshape(-1, 2), point_labels=np.asarray(labels, int))


IMAGE = np.zeros((6, 8, 3), dtype=np.uint8)


def test_fills_pixel_inclusive_box_rounded_half_up():
    mask = BoxSegmenter().segment(IMAGE, [prompt((0.5, 0.5, 2.4, 2.5))])[0]
    expected = np.zeros((6, 8), bool)
    expected[1:4, 1:3] = True  # x 1..2, y 1..3
    assert mask.dtype == bool and mask.shape == (6, 8)
    np.testing.assert_array_equal(mask, expected)


def test_zero_area_box_is_a_one_pixel_line_and_dot():
    masks = BoxSegmenter().segment(IMAGE, [prompt((2, 1, 2, 4)), prompt((3, 3, 3, 3))])
    assert masks[0].sum() == 4 and masks[0][:, 2].sum() == 4
    assert masks[1].sum() == 1 and masks[1][3, 3]


def test_clipping_inverted_and_outside_boxes():
    masks = BoxSegmenter().segment(
        IMAGE, [prompt((-5, -5, 1, 1)), prompt((7, 5, 6, 4)), prompt((20, 20, 30, 30)), prompt((-9, 2, -1, 3))]
    )
    assert masks[0].sum() == 4 and masks[0][:2, :2].all()
    assert masks[1].sum() == 4 and masks[1][4:6, 6:8].all()
    assert not masks[2].any() and not masks[3].any()


def test_no_box_gives_empty_mask_even_with_points():
    masks = BoxSegmenter().segment(IMAGE, [prompt(None, [(3, 3)], [1]), prompt((np.nan, 0, 2, 2))])
    assert masks.shape == (2, 6, 8) and not masks.any()


def test_vectorised_equals_one_by_one_and_is_deterministic():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    prompts = [prompt(tuple(rng.uniform(-10, 60, 4))) for _ in range(20)]
    seg = make_segmenter("box")
    batched = seg.segment(image, prompts)
    single = np.stack([seg.segment(image, [p])[0] for p in prompts])
    np.testing.assert_array_equal(batched, single)
    np.testing.assert_array_equal(batched, seg.segment(image, prompts))


def test_empty_prompt_list_and_segment_many():
    seg = BoxSegmenter()
    assert seg.segment(IMAGE, []).shape == (0, 6, 8)
    from segzero_env.segmenters import SegmentRequest

    outs = seg.segment_many([SegmentRequest(IMAGE, [prompt((0, 0, 1, 1))]), SegmentRequest(IMAGE[:3], [])])
    assert outs[0].sum() == 4 and outs[1].shape == (0, 3, 8)


def test_fill_boxes_nan_rows_are_empty():
    out = fill_boxes(np.array([[np.nan] * 4, [0, 0, 0, 0]]), 2, 2)
    assert not out[0].any() and out[1].sum() == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"points": np.zeros((2, 3)), "point_labels": np.ones(2, int)},
        {"points": np.zeros((2, 2)), "point_labels": np.ones(3, int)},
        {"points": np.zeros((1, 2)), "point_labels": np.array([2])},
        {"points": np.zeros((0, 2)), "point_labels": np.zeros(0, int), "mask_input": np.zeros((64, 64))},
    ],
)
def test_malformed_prompts_raise_with_named_field(bad):
    with pytest.raises(ValueError, match="Prompt\\."):
        BoxSegmenter().segment(IMAGE, [Prompt(box=(0, 0, 1, 1), **bad)])


def test_bad_image_raises():
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        BoxSegmenter().segment(np.zeros((4, 4), np.uint8), [])

import cv2
import numpy as np
import pytest

from segzero_env.segmenters import make_segmenter
from segzero_env.segmenters.grabcut import GrabCutSegmenter
from segzero_env.types import Prompt


def prompt(box, points=(), labels=()):
    return Prompt(box=box, points=np.asarray(points, dtype=float).reshape(-1, 2), point_labels=np.asarray(labels, int))


def scene():
    """Noisy dark background with a red disc (left) and a green disc (right)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 50, (240, 400, 3), dtype=np.uint8)
    left = np.zeros((240, 400), np.uint8)
    right = np.zeros((240, 400), np.uint8)
    cv2.circle(left, (130, 120), 60, 1, -1)
    cv2.circle(right, (270, 120), 60, 1, -1)
    image[left > 0] = (210, 40, 40)
    image[right > 0] = (40, 200, 60)
    noise = rng.integers(-20, 20, image.shape)
    image = np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)
    return image, left.astype(bool), right.astype(bool)


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def test_box_prompt_recovers_the_object_and_is_deterministic():
    image, left, _ = scene()
    seg = GrabCutSegmenter()
    masks = seg.segment(image, [prompt((60, 50, 200, 190))])
    assert masks.shape == (1, 240, 400) and masks.dtype == bool
    assert iou(masks[0], left) > 0.9
    np.testing.assert_array_equal(masks, GrabCutSegmenter().segment(image, [prompt((60, 50, 200, 190))]))
    assert seg.fallbacks == 0


def test_clicks_are_sure_foreground_and_background():
    image, left, right = scene()
    both = (60, 50, 340, 190)
    seg = GrabCutSegmenter()
    plain, clicked = seg.segment(image, [prompt(both), prompt(both, [(130, 120), (270, 120)], [1, 0])])
    assert plain[right].mean() > 0.8  # without clicks both discs are taken
    assert clicked[left].mean() > 0.8 and clicked[right].mean() < 0.2
    assert not clicked[120, 268:273].any()  # the negative click's disk is background


def test_points_without_box_use_a_padded_box_around_the_clicks():
    image, left, _ = scene()
    mask = GrabCutSegmenter(point_box_pad=0.2).segment(image, [prompt(None, [(130, 120)], [1])])[0]
    assert mask[120, 130] and mask.sum() > 0 and (mask & ~left).sum() < 0.2 * mask.sum()


def test_degenerate_prompts_fall_back_without_raising():
    image, _, _ = scene()
    seg = GrabCutSegmenter()
    prompts = [
        prompt((50, 50, 50, 90)),  # zero-area: 1-px line
        prompt((10, 10, 11, 11)),  # smaller than min_box_size
        prompt((500, 500, 600, 600)),  # outside the image
        prompt(None),  # nothing
        prompt(None, [(5, 5)], [0]),  # only a negative click
        prompt((0, 0, 399, 239)),  # the whole image: no background to model
        prompt((np.inf, 0, 5, 5)),  # non-finite box dropped
    ]
    masks = seg.segment(image, prompts)
    assert masks.shape == (7, 240, 400)
    assert masks[0].sum() == 41 and masks[0][50:91, 50].all()
    assert masks[1].sum() == 4
    assert not masks[2].any() and not masks[3].any() and not masks[4].any() and not masks[6].any()
    assert masks[5].all()
    assert seg.fallbacks == 3


def test_large_image_runs_on_a_downscaled_crop():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 40, (1200, 1600, 3), dtype=np.uint8)
    cv2.rectangle(image, (400, 300), (1100, 900), (200, 200, 30), -1)
    mask = GrabCutSegmenter(max_side=96).segment(image, [prompt((350, 250, 1150, 950))])[0]
    truth = np.zeros(mask.shape, bool)
    truth[300:901, 400:1101] = True
    assert iou(mask, truth) > 0.9


def test_registry_and_kwarg_validation():
    assert isinstance(make_segmenter("grabcut", iterations=2), GrabCutSegmenter)
    with pytest.raises(ValueError, match="iterations"):
        GrabCutSegmenter(iterations=0)
    with pytest.raises(ValueError, match="max_side"):
        GrabCutSegmenter(max_side=4)

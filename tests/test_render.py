"""Overlay pictures: the legend (every mark's colour, the IoU), a constant frame size, scaling, wrapping."""

import gymnasium as gym
import numpy as np
import pytest

import segzero_env  # noqa: F401 - registers the ids
from segzero_env.envs.render import LEGEND, _wrap, draw_legend, draw_overlay
from segzero_env.types import Prompt

REPLY = '<think>x</think><answer>{"bbox": [100, 120, 400, 380], "points_1": [200, 200], "points_2": [300, 300]}'
REPLY += "</answer>"


def has_colour(pixels: np.ndarray, colour) -> bool:
    return bool(np.all(pixels == np.array(colour, np.uint8), axis=-1).any())


def test_legend_shows_every_mark_in_its_colour():
    band = draw_legend(480, iou=0.25)
    for label, colour in LEGEND:
        assert has_colour(band, colour), label
    # the band is white with black text around the marks
    assert has_colour(band, (255, 255, 255)) and has_colour(band, (0, 0, 0))


def test_legend_layout_does_not_depend_on_the_iou():
    for width in (200, 320, 480, 640):
        shapes = {draw_legend(width, iou).shape for iou in (None, 0.0, 0.123, 1.0)}
        assert len(shapes) == 1, (width, shapes)
    assert not np.array_equal(draw_legend(480, 0.25), draw_legend(480, 0.75))  # the value is written


def test_overlay_draws_the_marks_and_adds_the_band():
    image = np.full((100, 150, 3), 90, np.uint8)
    gt = np.zeros((100, 150), np.uint8)
    gt[20:60, 30:80] = 1
    gt[:10, :10] = 255
    pred = np.zeros((100, 150), bool)
    pred[40:90, 60:120] = True
    points = np.array([[70.0, 50.0], [140.0, 95.0]])
    prompt = Prompt(box=(60, 40, 119, 89), points=points, point_labels=np.array([1, 0]))
    frame = draw_overlay(image, "the target", gt_mask=gt, pred_mask=pred, prompts=[prompt], iou=0.3)
    picture_height = 320  # long side 150 scaled up to 480: 100 -> 320
    assert frame.shape[1] == 480 and frame.shape[0] > picture_height
    picture = frame[:picture_height]
    for label, colour in LEGEND:
        if label not in ("prediction", "ignore region"):  # those two are blended into the image
            assert has_colour(picture, colour), label
    assert has_colour(picture, (230 * 0.45 + 90 * 0.55, 40 * 0.45 + 90 * 0.55, 40 * 0.45 + 90 * 0.55))
    ignore_corner = picture[:30, :30].reshape(-1, 3)
    assert len(np.unique(ignore_corner, axis=0)) == 2  # stripes: image and grey
    band = frame[picture_height:]
    for _, colour in LEGEND:
        assert has_colour(band, colour)


def test_large_images_are_scaled_down_and_long_queries_cut():
    frame = draw_overlay(np.zeros((1000, 2000, 3), np.uint8), "word " * 300)
    assert frame.shape[1] == 640
    lines = _wrap("word " * 300, 460, max_lines=4)
    assert len(lines) == 4 and lines[-1].endswith("...")
    assert _wrap("x" * 500, 100, max_lines=10)[0] != "x" * 500  # a word wider than the picture is split


@pytest.mark.parametrize("render_mode", ["rgb_array"])
def test_env_render_has_the_legend_and_keeps_its_size(render_mode):
    env = gym.make("ReasonSegShapes-v0", segmenter="box", render_mode=render_mode)
    _, info = env.reset(seed=3)
    before = env.render()
    env.step(REPLY)
    after = env.render()
    assert before.shape == after.shape  # one frame size per episode, for video recorders
    height, width = info["orig_height"], info["orig_width"]
    scale = after.shape[1] / width
    picture_height = round(height * scale)
    assert after.shape[0] > picture_height + 30  # query line plus legend rows
    band = after[picture_height:]
    for label, colour in LEGEND:
        assert has_colour(band, colour), label
    assert not np.array_equal(before[picture_height:], after[picture_height:])  # "IoU -" became a value
    assert not np.array_equal(before[:picture_height], after[:picture_height])  # the prediction is drawn
    env.close()

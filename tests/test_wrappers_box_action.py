import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segzero_env  # noqa: F401
from segzero_env.answers import format_reply
from segzero_env.parsing import parse_reply
from segzero_env.wrappers import ContinuousBoxAction, ResizeImage

SMALL = {"image_size": 64, "segmenter": "box", "dataset_kwargs": {"level": 0, "size": 16}}


def make(**kwargs):
    return ContinuousBoxAction(gym.make("ReasonSegShapes-v0", **SMALL), **kwargs)


ENV = make()
ENV_IMAGE_POINTS = make(points_frame="image", integer_coords=False)
unit_vectors = st.lists(st.floats(-1.5, 1.5, allow_nan=False), min_size=8, max_size=8)


def test_action_space_is_sb3_friendly():
    assert ENV.action_space == gym.spaces.Box(-1.0, 1.0, (8,), dtype=np.float32)


ENV_CORNERS = make(box_format="corners")


def test_extremes_map_to_first_and_last_pixel_and_corners_are_sorted():
    answer = ENV_CORNERS.decode(np.array([1, 1, -1, -1, 0, 0, 0, 0], dtype=np.float32))
    assert answer.box == (0.0, 0.0, 63.0, 63.0)
    assert answer.points == ((32.0, 32.0), (32.0, 32.0))  # 31.5 rounds half up


def test_center_size_zero_action_is_a_centred_half_frame_box_and_overflow_is_clipped():
    assert ENV.decode(np.zeros(8)).box == (16.0, 16.0, 47.0, 47.0)  # 15.75 and 47.25 rounded
    assert ENV.decode(np.array([1, -1, 1, 1, 0, 0, 0, 0])).box == (32.0, 0.0, 63.0, 32.0)
    assert ENV.decode(np.array([0, 0, -1, -1, 0, 0, 0, 0])).box == (32.0, 32.0, 32.0, 32.0)


@settings(max_examples=60, deadline=None)
@given(unit_vectors)
def test_every_action_gives_a_valid_box_with_points_inside(values):
    answer = ENV.decode(np.array(values))
    x1, y1, x2, y2 = answer.box
    assert 0 <= x1 <= x2 <= 63 and 0 <= y1 <= y2 <= 63
    assert all(x1 <= px <= x2 and y1 <= py <= y2 for px, py in answer.points)
    parsed = parse_reply(ENV.write(answer))
    assert parsed.ok and parsed.strict_json and parsed.think_format
    assert parsed.objects[0].box == answer.box


@settings(max_examples=60, deadline=None)
@given(unit_vectors)
def test_encode_inverts_decode(values):
    for env in (ENV_IMAGE_POINTS, make(integer_coords=False, box_format="corners")):
        answer = env.decode(np.array(values))
        if env.box_format == "center-size" and (answer.box[2] - answer.box[0]) * (answer.box[3] - answer.box[1]) == 0:
            continue  # a zero-size box cannot place box-relative points; skip the degenerate case
        again = env.decode(env.encode_answer(answer.box, answer.points))
        np.testing.assert_allclose(again.box, answer.box, atol=1e-3)
        np.testing.assert_allclose(again.points, answer.points, atol=1e-3)


def test_bad_actions_are_rejected_with_a_reason():
    with pytest.raises(ValueError, match="8 numbers"):
        ENV.decode(np.zeros(7))
    with pytest.raises(ValueError, match="NaN"):
        ENV.decode(np.full(8, np.nan))
    with pytest.raises(ValueError, match="points_frame"):
        make(points_frame="pixels")
    with pytest.raises(ValueError, match="box_format"):
        make(box_format="xywh")


def test_oracle_action_beats_whole_frame_and_frame_survives_resizing():
    env = ContinuousBoxAction(ResizeImage(gym.make("ReasonSegShapes-v0", **SMALL), size=40))
    obs, info = env.reset(seed=1)
    assert obs["image"].shape == (40, 40, 3) and env.frame_size == 64
    oracle = env.encode_answer(info["gt_box"], info["gt_points"])
    _, _, terminated, truncated, step_info = env.step(oracle)
    assert terminated and not truncated and step_info["parse_failure"] is None
    # The box segmenter caps IoU by the shape's fill of its box; whole-pixel rounding at S=64 costs a little more.
    exact = env.unwrapped
    exact.reset(seed=1)
    _, _, _, _, exact_info = exact.step(format_reply(box=info["gt_box"], points=info["gt_points"]))
    assert step_info["iou"] > 0.45 and step_info["iou"] == pytest.approx(exact_info["iou"], abs=0.1)
    np.testing.assert_allclose(step_info["answer"]["objects"][0]["box"], np.round(info["gt_box"]), atol=1.0)
    env.reset(seed=1)
    _, _, _, _, whole = env.step(np.array([0, 0, 1, 1, 0, 0, 0, 0], dtype=np.float32))
    assert whole["iou"] < step_info["iou"]
    assert whole["reply"].startswith("<think>")

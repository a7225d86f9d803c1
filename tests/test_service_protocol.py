"""The service's wire format and its Ray-free scoring core."""

import gymnasium as gym
import numpy as np
import pytest

import segzero_env  # noqa: F401
from segzero_env.answers import format_reply
from segzero_env.segmenters.box import BoxSegmenter
from segzero_env.service.core import ScoringCore
from segzero_env.service.protocol import (
    BadRequestError,
    Limits,
    ScoreItem,
    decode_masks,
    encode_masks,
    parse_segment_body,
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "requests is missing"),
        ({"requests": [{"prompts": []}]}, "requests[0] names no image"),
        ({"requests": [{"image_key": "k", "prompts": "x"}]}, "requests[0].prompts must be a list"),
        ({"requests": [{"image_key": "k", "prompts": [{"box": [1, 2, 3]}]}]}, "requests[0].prompts[0].box must have"),
        ({"requests": [{"image_key": "k", "prompts": [{"points": [[1, 2]], "labels": [3]}]}]}, "labels must be 0"),
        ({"requests": [{"image_key": "k", "image_png": "!!", "prompts": []}]}, "image_png is not base64"),
        ({"requests": [{"image_key": "k", "prompts": [], "module": "os"}]}, "unknown field 'module'"),
    ],
)
def test_segment_bodies_are_checked_field_by_field(body, message):
    with pytest.raises(BadRequestError) as error:
        parse_segment_body(body, Limits())
    assert message in str(error.value) and 400 <= error.value.status < 500


def test_masks_round_trip_bit_exactly():
    masks = np.random.default_rng(0).random((3, 17, 29)) > 0.5
    assert (decode_masks(encode_masks(masks)) == masks).all()


class CountingBox(BoxSegmenter):
    """The box segmenter, counting how many images each segment_many call receives."""

    def __init__(self):
        super().__init__()
        self.calls: list[int] = []

    def segment_many(self, requests):
        self.calls.append(len(requests))
        return super().segment_many(requests)


def test_core_scores_many_requests_in_one_pass_like_the_env():
    segmenter = CountingBox()
    core = ScoringCore("ReasonSegShapes-v0", {"segmenter": segmenter, "image_size": 56})
    env = gym.make("ReasonSegShapes-v0", segmenter="box", image_size=56).unwrapped
    ids = list(core.env.dataset.sample_ids[:2])
    requests, expected = [], []
    for sample_id in ids * 2:  # two requests per sample, as two trainers would send
        _, info = env.reset(options={"sample_id": sample_id})
        replies = [format_reply(box=info["gt_box"], points=info["gt_points"]), "junk"]
        requests.append([ScoreItem(sample_id, r) for r in replies])
        for reply in replies:
            env.reset(options={"sample_id": sample_id})
            expected.append(env.step(reply)[1])
    results = core.score(requests)
    assert [r["reward"] for request in results for r in request] == expected
    assert segmenter.calls == [2]  # one segmenter call, one request per distinct image
    assert core.stats()["replies_scored"] == 8 and core.stats()["score_passes"] == 1
    with pytest.raises(BadRequestError, match=r"items\[1\].sample_id 'nope'") as error:
        core.check_sample_ids([ids[0], "nope"])
    assert error.value.status == 404

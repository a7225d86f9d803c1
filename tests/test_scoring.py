"""The env's scoring step: replies to prompts in the original frame, masks, and the terms' inputs."""

import numpy as np
import pytest

from segzero_env.answers import format_reply
from segzero_env.envs.episode import make_episode
from segzero_env.envs.scoring import object_to_prompt, score_replies
from segzero_env.rewards import make_preset
from segzero_env.segmenters.box import BoxSegmenter
from segzero_env.types import AnswerSchema, ObjectAnswer, Sample


def _sample(width=8, height=4, mask=None, **meta):
    image = np.zeros((height, width, 3), np.uint8)
    return Sample("s", image, "the thing", np.zeros((height, width), np.uint8) if mask is None else mask, meta=meta)


def test_prompts_map_to_the_original_frame_rounded_half_up_then_clipped():
    episode = make_episode(_sample(), image_size=16, max_query_length=64)  # scale (0.5, 0.25)
    obj = ObjectAnswer(box=(5.0, 2.0, 31.0, 30.0), points=((3.0, 6.0),), negative_points=((1.0, 2.0),))
    prompt = object_to_prompt(obj, episode)
    # 2.5 -> 3 and 0.5 -> 1 (half up, where round() gives 2 and 0); 15.5 -> 16 and 7.5 -> 8, clipped to
    # the last column (7) and row (3).
    assert prompt.box == (3.0, 1.0, 7.0, 3.0)
    assert prompt.points.tolist() == [[2.0, 2.0], [1.0, 1.0]]  # 1.5 -> 2; the negative click 0.5 -> 1
    assert prompt.point_labels.tolist() == [1, 0]


def test_every_object_of_a_reply_is_segmented_into_one_mask():
    episode = make_episode(_sample(width=16, height=16), image_size=16, max_query_length=64)
    objects = [
        ObjectAnswer((0.0, 0.0, 2.0, 2.0), ((1.0, 1.0),)),
        ObjectAnswer((10.0, 10.0, 12.0, 12.0), ((11.0, 11.0),)),
    ]
    reply = format_reply(objects, schema=AnswerSchema.VISION_REASONER)
    (outcome,) = score_replies([episode], [reply], BoxSegmenter(), make_preset("mask-iou"))
    assert outcome.pred_mask[0:3, 0:3].all() and outcome.pred_mask[10:13, 10:13].all()
    assert outcome.pred_mask.sum() == 18


def test_an_empty_prediction_of_an_empty_target_scores_iou_one():
    episode = make_episode(_sample(no_target=True), image_size=16, max_query_length=64)
    outcomes = score_replies([episode, episode], ["<answer>[]</answer>", "no answer"], BoxSegmenter(), make_preset())
    for outcome in outcomes:  # LISA's rule: an empty union is a perfect match
        assert (outcome.union, outcome.iou) == (0, 1.0)
    # The no-target sample rewards the empty answer, and only it.
    assert outcomes[0].terms["box_iou"] == 1.0 and outcomes[1].terms["box_iou"] == 0.0


def test_a_sample_with_several_targets_scores_a_reply_against_all_of_them():
    mask = np.zeros((16, 16), np.uint8)
    mask[0:3, 0:3] = mask[10:13, 10:13] = 1
    sample = _sample(width=16, height=16, mask=mask, gt_boxes=[(0, 0, 2, 2), (10, 10, 12, 12)])
    episode = make_episode(sample, image_size=16, max_query_length=64)
    assert episode.gt_objects is not None and len(episode.gt_objects) == 2
    one = format_reply([ObjectAnswer((0.0, 0.0, 2.0, 2.0), ((1.0, 1.0),))], schema=AnswerSchema.VISION_REASONER)
    (outcome,) = score_replies([episode], [one], BoxSegmenter(), make_preset("vision-reasoner-robust"))
    # One of two targets found: its match (IoU, L1, point) counts, divided by the two targets.
    assert outcome.terms["vr_accuracy"] == pytest.approx(3 / 2)

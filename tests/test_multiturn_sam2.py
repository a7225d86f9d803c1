"""Refinement clicks and previous logits reach SAM2 (hiera-tiny, random weights, CPU)."""

import gymnasium as gym
import numpy as np
import pytest

import segzero_env  # noqa: F401
from segzero_env.answers import format_refinement, format_reply
from segzero_env.segmenters.sam2_backend import SAM2Segmenter


class RecordingSAM2(SAM2Segmenter):
    """The real SAM2 segmenter, keeping every request and output."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.requests, self.outputs = [], []

    def segment_many_with_logits(self, requests):
        outputs = super().segment_many_with_logits(requests)
        self.requests.append(list(requests))
        self.outputs.append(outputs)
        return outputs


@pytest.fixture(scope="module")
def sam2():
    import torch

    torch.set_num_threads(2)
    return RecordingSAM2(model="tiny", random_weights=True, device="cpu")


def test_clicks_and_previous_logits_reach_sam2(sam2):
    env = gym.make("ReasonSegShapes-v0", image_size=112, segmenter=sam2, max_turns=3)
    _, info = env.reset(seed=0)
    env.step(format_reply(box=info["gt_box"], points=info["gt_points"]))
    _, _, _, _, info2 = env.step(format_refinement([(40, 40)], [(90, 12)]))
    _, _, terminated, _, info3 = env.step(format_refinement(negative_points=[(5, 100)], stop=True))
    assert terminated and info3["stopped"]
    assert sam2.encode_calls == 1  # one image, encoded once, reused by every turn
    prompts = [reqs[0].prompts[0] for reqs in sam2.requests]
    assert [p.point_labels.tolist() for p in prompts] == [[1, 1], [1, 1, 1, 0], [1, 1, 1, 0, 0]]
    assert prompts[0].mask_input is None
    for turn in (1, 2):
        previous_logits = sam2.outputs[turn - 1][0].low_res_logits[0]
        np.testing.assert_array_equal(prompts[turn].mask_input, previous_logits)
        assert prompts[turn].mask_input.shape == (256, 256)
    # the mask reported is the one SAM2 returned for the last prompt
    np.testing.assert_array_equal(env.unwrapped.last_pred_mask, sam2.outputs[-1][0].masks[0])


def test_sam2_group_vector_refinement_is_one_decoder_pass_per_turn(sam2):
    envs = gym.make_vec(
        "ReasonSegShapes-v0",
        num_envs=4,
        vectorization_mode="vector_entry_point",
        group_size=4,
        image_size=112,
        segmenter=sam2,
        max_turns=2,
    )
    envs.reset(seed=1)
    info = envs.unwrapped.envs[0].episode_info(envs.unwrapped.envs[0].episode)
    before = len(sam2.requests)
    envs.step([format_reply(box=info["gt_box"], points=info["gt_points"])] * 4)
    clicks = [format_refinement([(10 * k + 5, 20)]) for k in range(4)]
    _, _, terminated, _, _ = envs.step(clicks)
    assert terminated.all()
    turn2 = sam2.requests[before + 1]
    assert len(turn2) == 1 and len(turn2[0].prompts) == 4  # one image, four members' prompts together
    assert all(p.mask_input is not None for p in turn2[0].prompts)

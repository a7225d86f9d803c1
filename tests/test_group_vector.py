import gymnasium as gym
import numpy as np
import pytest

import segzero_env  # noqa: F401
from segzero_env.answers import format_reply
from segzero_env.segmenters.box import BoxSegmenter
from segzero_env.types import ObjectAnswer


class CountingBoxSegmenter(BoxSegmenter):
    """The real box segmenter, counting how often it is called and with how many images."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def segment_many(self, requests):
        self.calls.append(len(requests))
        return super().segment_many(requests)


def replies_for(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i % 4 == 3:
            out.append("unusable reply")
            continue
        x1, y1 = rng.uniform(0, 60, 2)
        w, h = rng.uniform(5, 50, 2)
        obj = ObjectAnswer(box=(x1, y1, x1 + w, y1 + h), points=((x1 + w / 2, y1 + h / 2), (x1 + w / 3, y1 + h / 3)))
        out.append(format_reply([obj]))
    return out


def make_vec(num_envs, group_size, **kwargs):
    return gym.make_vec(
        "ReasonSegShapes-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        group_size=group_size,
        image_size=112,
        **kwargs,
    )


def test_blocks_share_a_sample_and_match_single_env_seeding():
    envs = make_vec(8, 4, segmenter="box")
    obs, infos = envs.reset(seed=10)
    ids = list(infos["sample_id"])
    assert len(set(ids[:4])) == 1 and len(set(ids[4:])) == 1
    assert obs["image"].shape == (8, 112, 112, 3)
    assert envs.observation_space.contains(obs)
    single = gym.make("ReasonSegShapes-v0", image_size=112, segmenter="box")
    _, info = single.reset(seed=14)
    assert info["sample_id"] == ids[4]


def test_grouped_rewards_equal_single_env_rewards_and_one_call_per_step():
    segmenter = CountingBoxSegmenter()
    envs = make_vec(8, 4, segmenter=segmenter)
    _, infos = envs.reset(seed=0)
    replies = replies_for(8, seed=1)
    _, rewards, terminated, truncated, infos_after = envs.step(replies)
    assert terminated.all() and not truncated.any()
    step_infos = infos_after["final_info"]  # same-step autoreset (the default): top level is the next episode
    assert segmenter.calls == [2]  # one batched call, two distinct images
    single = gym.make("ReasonSegShapes-v0", image_size=112, segmenter="box")
    for i, reply in enumerate(replies):
        single.reset(options={"sample_id": infos["sample_id"][i]})
        _, reward, _, _, info = single.step(reply)
        assert reward == rewards[i]
        assert info["iou"] == step_infos["iou"][i]
        for term, values in step_infos["reward_terms"].items():
            if not term.startswith("_"):
                assert info["reward_terms"][term] == values[i]


def test_next_step_autoreset_and_sample_ids_option():
    envs = make_vec(4, 2, segmenter="box", autoreset_mode="NextStep")
    envs.reset(seed=0)
    _, _, term, _, _ = envs.step(["a"] * 4)
    assert term.all()
    _, rewards, term, _, infos = envs.step(["b"] * 4)
    assert not term.any() and (rewards == 0).all()
    ids = envs.unwrapped.envs[0].dataset.sample_ids[:2]
    _, infos = envs.reset(options={"sample_ids": list(ids)})
    assert list(infos["sample_id"]) == [ids[0], ids[0], ids[1], ids[1]]


def test_bad_group_configuration_is_rejected():
    with pytest.raises(ValueError, match="multiple of group_size"):
        make_vec(6, 4, segmenter="box")


def test_grouped_rewards_equal_single_env_rewards_with_sam2_random_weights():
    torch = pytest.importorskip("torch")
    from segzero_env.segmenters.sam2_backend import SAM2Segmenter

    torch.set_num_threads(2)
    sam2_kwargs = {"model": "tiny", "random_weights": True, "device": "cpu"}
    envs = make_vec(8, 4, segmenter="sam2", segmenter_kwargs=sam2_kwargs)
    _, infos = envs.reset(seed=3)
    replies = replies_for(8, seed=4)
    _, rewards, _, _, infos_after = envs.step(replies)
    step_infos = infos_after["final_info"]
    assert envs.unwrapped.segmenter.encode_calls == 2  # one encode per distinct image
    # A separate segmenter instance: nothing is shared with the vector env but the seeded weights.
    single = gym.make("ReasonSegShapes-v0", image_size=112, segmenter=SAM2Segmenter(**sam2_kwargs))
    for i, reply in enumerate(replies):
        single.reset(options={"sample_id": infos["sample_id"][i]})
        _, reward, _, _, info = single.step(reply)
        assert reward == rewards[i]
        assert (info["intersection"], info["union"]) == (step_infos["intersection"][i], step_infos["union"][i])

"""Env arguments of the wrong type or size are refused with a message naming the argument, never coerced."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import segzero_env  # noqa: F401
from segzero_env.envs.reasonseg_env import MAX_IMAGE_SIZE, ReasonSegEnv
from segzero_env.types import Sample


def make(**kwargs: object) -> gym.Env:
    return gym.make("ReasonSegShapes-v0", **{"image_size": 56, "segmenter": "box", **kwargs})


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ("abc", r"options\['index'\] must be a whole number, got 'abc' \(str\)"),
        (1.7, r"options\['index'\] must be a whole number, got 1.7"),
        (True, r"options\['index'\] must be a whole number, got True \(bool\)"),
    ],
)
def test_reset_index_must_be_a_whole_number(index: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make().reset(options={"index": index})


def test_reset_index_accepts_integers_and_integral_floats() -> None:
    env = make()
    ids = [env.reset(options={"index": i})[1]["sample_id"] for i in (2, np.int64(2), 2.0)]
    assert len(set(ids)) == 1 and ids[0] != env.reset(options={"index": 1})[1]["sample_id"]
    with pytest.raises(IndexError, match=r"options\['index'\]=-1 is outside the dataset"):
        env.reset(options={"index": -1})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 840.5}, r"image_size must be a whole number, got 840.5"),
        ({"image_size": "840"}, r"image_size must be a whole number, got '840' \(str\)"),
        ({"image_size": 20000}, rf"image_size must be between 28 and {MAX_IMAGE_SIZE}, got 20000"),
        ({"image_size": 27}, rf"image_size must be between 28 and {MAX_IMAGE_SIZE}, got 27"),
        ({"max_turns": 2.5}, r"max_turns must be a whole number, got 2.5"),
        ({"max_query_length": 0}, r"max_query_length must be at least 1, got 0"),
        ({"max_reply_length": "long"}, r"max_reply_length must be a whole number, got 'long'"),
        ({"turn_cost": "abc"}, r"turn_cost must be a finite number, got 'abc' \(str\)"),
        ({"reward_weights": {"mask_iou": "abc"}}, r"reward_weights\['mask_iou'\] must be a finite number, got 'abc'"),
        ({"reward_weights": {"mask_iou": True}}, r"reward_weights\['mask_iou'\] must be a finite number, got True"),
    ],
)
def test_constructor_arguments_name_themselves_when_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_image_size_bound_says_why() -> None:
    with pytest.raises(ValueError, match="observation is image_size x image_size pixels"):
        make(image_size=20000)
    assert make(image_size=840.0).unwrapped.image_size == 840


class LongQuery:
    """A one-sample dataset whose query is ten million characters long."""

    name, split, has_masks = "long", "val", True
    sample_ids = ["q"]

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Sample:
        mask = np.zeros((20, 20), np.uint8)
        mask[5:15, 5:15] = 1
        return Sample("q", np.zeros((20, 20, 3), np.uint8), "é" + "x" * 10_000_000, mask)

    def index_of(self, sample_id: str) -> int:
        return 0


def test_a_huge_query_is_capped_in_the_prompt_as_in_the_observation() -> None:
    env = ReasonSegEnv(dataset=LongQuery(), segmenter="box", image_size=56, max_query_length=100)
    obs, info = env.reset(seed=0)
    assert len(obs["query"]) == 100
    assert len(info["query"]) == 100 and info["query"].startswith("éxx")  # the raw text, not folded
    assert len(info["prompt"]) < 1000 and info["query"] in info["prompt"].replace("É", "é")
    _, _, _, _, step_info = env.step("<think>x</think>")
    assert len(step_info["prompt"]) < 1000


def test_group_vector_env_sizes_must_be_whole_numbers() -> None:
    with pytest.raises(ValueError, match=r"group_size must be a whole number, got 2.5"):
        gym.make_vec("ReasonSegShapes-v0", num_envs=5, vectorization_mode="vector_entry_point", group_size=2.5)
    with pytest.raises(ValueError, match=r"num_envs \(5\) must be a positive multiple of group_size \(2\)"):
        gym.make_vec("ReasonSegShapes-v0", num_envs=5, vectorization_mode="vector_entry_point", group_size=2)


def test_image_wrappers_check_their_size() -> None:
    from segzero_env.wrappers import MaskToImage, ResizeImage

    with pytest.raises(ValueError, match=r"size must be a whole number, got 47.5"):
        ResizeImage(make(), size=47.5)
    with pytest.raises(ValueError, match=rf"size must be between 1 and {MAX_IMAGE_SIZE}, got 50000"):
        ResizeImage(make(), size=50000)
    with pytest.raises(ValueError, match=r"size must be a whole number, got '64' \(str\)"):
        MaskToImage(make(max_turns=2), size="64")

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import segzero_env  # noqa: F401
from segzero_env.wrappers import ResizeImage


class TwoKeyEnv(gym.Env):
    """A colour image plus a binary mask, to check each kind of key is resized its own way."""

    observation_space = spaces.Dict(
        {"image": spaces.Box(0, 255, (100, 100, 3), np.uint8), "mask": spaces.Box(0, 255, (100, 100), np.uint8)}
    )
    action_space = spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        image = np.zeros((100, 100, 3), np.uint8)
        image[:, :50] = (200, 10, 30)
        mask = np.zeros((100, 100), np.uint8)
        mask[20:60, 30:90] = 1
        return {"image": image, "mask": mask}, {}

    def step(self, action):
        return self.reset()[0], 0.0, True, False, {}


def test_env_image_is_resized_into_its_space():
    env = ResizeImage(gym.make("ReasonSegShapes-v0", image_size=112, segmenter="box"), size=48)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (48, 48, 3) and obs["image"].dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert isinstance(obs["query"], str)


def test_colours_are_kept_and_masks_stay_binary():
    env = ResizeImage(TwoKeyEnv(), size=20, keys=("image", "mask"))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["image"][:, :10], np.broadcast_to([200, 10, 30], (20, 10, 3)))
    assert obs["mask"].shape == (20, 20) and set(np.unique(obs["mask"])) == {0, 1}
    assert obs["mask"].sum() == pytest.approx(8 * 12, abs=12)
    assert env.observation_space.contains(obs)


def test_bad_keys_are_rejected():
    with pytest.raises(ValueError, match="'query'"):
        ResizeImage(gym.make("ReasonSegShapes-v0", image_size=64, segmenter="box"), keys=("query",))
    with pytest.raises(ValueError, match="size must be between 1 and 4096, got 0"):
        ResizeImage(TwoKeyEnv(), size=0)

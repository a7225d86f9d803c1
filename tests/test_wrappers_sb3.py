import warnings

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.monitor import Monitor

from segzero_env.wrappers import make_sb3_env

SMALL = {"image_size": 64, "segmenter": "box", "dataset_kwargs": {"level": 0, "size": 64}}


@pytest.mark.parametrize("encoding", ["bag-of-words", "hashed", "token-ids"])
def test_sb3_check_env_passes_without_warnings(encoding):
    env = make_sb3_env("ReasonSegShapes-v0", query_encoding=encoding, obs_size=48, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (48, 48, 3)


def test_make_sb3_env_rejects_kwargs_with_a_built_env():
    env = make_sb3_env("ReasonSegShapes-v0", **SMALL)
    with pytest.raises(ValueError, match="built env"):
        make_sb3_env(env.unwrapped, image_size=64)


def test_ppo_trains_and_monitor_logs_iou():
    torch.set_num_threads(1)
    env = make_sb3_env("ReasonSegShapes-v0", monitor=True, **SMALL)
    assert isinstance(env, Monitor) and "iou" in env.info_keywords
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=32, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=96)
    assert model.num_timesteps >= 96
    assert len(env.get_episode_rewards()) >= 96  # one step per episode: a contextual bandit
    assert set(env.get_episode_lengths()) == {1}
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (8,) and np.all(np.abs(action) <= 1)
    _, reward, terminated, _, info = env.step(action)
    assert terminated and 0.0 <= info["iou"] <= 1.0 and info["parse_failed"] == 0.0
    assert reward == pytest.approx(2.0 + info["iou"])  # mask-iou preset: two format terms always met

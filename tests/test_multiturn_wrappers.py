import warnings

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env

import segzero_env  # noqa: F401
from segzero_env.parsing import parse_reply
from segzero_env.wrappers import ContinuousClickAction, MaskToImage, make_sb3_env


def test_sb3_multi_turn_env_passes_the_checker_without_warnings():
    env = make_sb3_env("ReasonSegShapes-v0", image_size=64, segmenter="grabcut", query_encoding="hashed", max_turns=3)
    assert env.action_space.shape == (11,)
    assert env.observation_space["prev_mask"].shape == (64, 64, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert [str(w.message) for w in caught if "observation" in str(w.message)] == []


def test_click_action_answers_first_then_clicks_with_sign():
    env = ContinuousClickAction(gym.make("ReasonSegShapes-v0", image_size=64, segmenter="grabcut", max_turns=3))
    env.reset(seed=0)
    action = np.zeros(11, dtype=np.float32)
    _, _, _, _, info = env.step(action)
    assert parse_reply(info["reply"]).schema.value == "seg-zero"
    action[8:] = [1.0, -1.0, 0.5]
    _, _, _, _, info = env.step(action)
    first = parse_reply(info["reply"]).refinement
    assert first.positive_points == ((63.0, 0.0),) and first.negative_points == ()
    action[10] = -0.1
    _, _, terminated, _, info = env.step(action)
    assert terminated and parse_reply(info["reply"]).refinement.negative_points == ((63.0, 0.0),)
    assert info["current_answer"][0]["negative_points"] == [[63.0, 0.0]]
    _, info = env.reset(seed=1)
    assert env.turn == 0 and info["turn"] == 0


def test_click_action_and_mask_image_reject_single_turn_envs():
    single = gym.make("ReasonSegShapes-v0", image_size=64, segmenter="box")
    with pytest.raises(ValueError, match="max_turns"):
        ContinuousClickAction(single)
    with pytest.raises(ValueError, match="prev_mask"):
        MaskToImage(single)


def test_ppo_runs_on_the_multi_turn_env():
    env = make_sb3_env(
        "ReasonSegShapes-v0", image_size=64, obs_size=36, segmenter="box", query_encoding="hashed", max_turns=2
    )
    model = PPO("MultiInputPolicy", env, n_steps=16, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=16)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (11,)

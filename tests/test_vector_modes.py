"""Vector envs of every kind hand back the single env's data and score every reply."""

import gymnasium as gym
import numpy as np
import pytest

import segzero_env  # noqa: F401
from segzero_env.answers import format_refinement, format_reply

ENV_ID = "ReasonSegShapes-v0"
KWARGS = {"image_size": 56, "segmenter": "box"}
N = 3


def oracle(info, i):
    return format_reply(box=info["gt_box"][i], points=info["gt_points"][i])


def single_score(sample_id, reply):
    env = gym.make(ENV_ID, **KWARGS)
    env.reset(options={"sample_id": sample_id})
    _, reward, _, _, info = env.step(reply)
    return reward, info["iou"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sync_and_async_observations_equal_the_single_envs(mode):
    # shared_memory is Gymnasium's default for async: the queries must not come back stale
    envs = gym.make_vec(ENV_ID, num_envs=N, vectorization_mode=mode, **KWARGS)
    try:
        obs, infos = envs.reset(seed=7)
        obs_after, _, _, _, infos_after = envs.step(["not a reply"] * N)
        obs_next, _, _, _, _ = envs.step(["still not a reply"] * N)  # next-step autoreset: a new sample
    finally:
        envs.close()
    single = gym.make(ENV_ID, **KWARGS)
    for i in range(N):
        s_obs, s_info = single.reset(seed=7 + i)
        assert s_info["sample_id"] == infos["sample_id"][i]
        assert obs["query"][i] == s_obs["query"] and obs_after["query"][i] == s_obs["query"]
        np.testing.assert_array_equal(obs["image"][i], s_obs["image"])
        assert obs_next["query"][i] == single.reset()[0]["query"]  # the sub-env's RNG draws the next sample
    assert isinstance(obs["query"], tuple) and len(set(obs["query"])) > 1


def test_async_without_copy_shows_the_current_queries():
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="async", vector_kwargs={"copy": False}, **KWARGS)
    try:
        obs, infos = envs.reset(seed=0)
        first = list(obs["query"])
        envs.reset(seed=100)
        second = list(obs["query"])  # the same object, now showing the buffer's new content
    finally:
        envs.close()
    single = gym.make(ENV_ID, **KWARGS)
    assert first == [single.reset(seed=s)[0]["query"] for s in (0, 1)]
    assert second == [single.reset(seed=s)[0]["query"] for s in (100, 101)]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: gym.make_vec(ENV_ID, num_envs=N, **KWARGS), id="default-group"),
        pytest.param(
            lambda: gym.make_vec(
                ENV_ID, num_envs=N, vectorization_mode="sync", vector_kwargs={"autoreset_mode": "SameStep"}, **KWARGS
            ),
            id="sync-same-step",
        ),
        pytest.param(
            lambda: gym.make_vec(
                ENV_ID, num_envs=N, vectorization_mode="async", vector_kwargs={"autoreset_mode": "SameStep"}, **KWARGS
            ),
            id="async-same-step",
        ),
    ],
)
def test_every_reply_of_a_two_step_loop_is_scored(make):
    envs = make()
    try:
        obs, info = envs.reset(seed=0)
        for _ in range(2):
            replies = [oracle(info, i) for i in range(N)]
            shown = list(info["sample_id"])
            obs, rewards, terminated, truncated, info = envs.step(replies)
            assert terminated.all() and not truncated.any()
            scored = info["final_info"]
            for i in range(N):
                reward, iou = single_score(shown[i], replies[i])
                assert scored["sample_id"][i] == shown[i]
                assert rewards[i] == reward > 0 and scored["iou"][i] == iou
            # the observations and the top-level info already belong to the next episode
            assert list(obs["query"]) == list(info["query"])
    finally:
        envs.close()


def test_group_env_same_step_keeps_the_scored_masks_and_defaults_to_same_step():
    envs = gym.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", group_size=2, **KWARGS)
    assert envs.unwrapped.autoreset_mode == gym.vector.AutoresetMode.SAME_STEP
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, info = envs.reset(seed=1)
    _, _, _, _, after = envs.step([oracle(info, i) for i in range(4)])
    assert all(m is not None and m.any() for m in envs.unwrapped.last_pred_masks)
    assert [o["query"] for o in after["final_obs"]] == list(obs["query"])
    assert [len(set(after["sample_id"][b * 2 : b * 2 + 2])) for b in range(2)] == [1, 1]
    envs.reset(seed=2)  # an explicit reset starts new episodes: no mask of the old ones is left
    assert envs.unwrapped.last_pred_masks == [None] * 4


def test_disabled_autoreset_raises_and_reset_mask_resets_whole_blocks():
    envs = gym.make_vec(
        ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", group_size=2, autoreset_mode="Disabled", **KWARGS
    )
    _, info = envs.reset(seed=0)
    _, _, _, _, after = envs.step(["x"] * 4)
    assert "iou" in after and "final_info" not in after  # nothing reset: the step's info is top-level
    with pytest.raises(RuntimeError, match=r"finished sub-envs \[0, 1, 2, 3\].*reset"):
        envs.step(["x"] * 4)
    with pytest.raises(ValueError, match="whole blocks"):
        envs.reset(options={"reset_mask": np.array([True, False, False, False])})
    _, partial = envs.reset(seed=5, options={"reset_mask": np.array([False, False, True, True])})
    assert partial["_sample_id"].tolist() == [False, False, True, True]
    with pytest.raises(RuntimeError, match=r"finished sub-envs \[0, 1\]"):
        envs.step(["x"] * 4)
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", autoreset_mode="same", **KWARGS)


def test_multi_turn_same_step_block_waits_then_resets_in_the_step_its_last_member_ends():
    envs = gym.make_vec(
        ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", group_size=2, max_turns=4, **KWARGS
    )
    obs, info = envs.reset(seed=0)
    first_ids = list(info["sample_id"])
    envs.step([oracle(info, i) for i in range(4)])
    stop, click = format_refinement(stop=True), format_refinement([(5, 5)])
    obs, rewards, terminated, _, info = envs.step([stop, click, click, click])
    assert terminated.tolist() == [True, False, False, False] and obs["turn"].tolist() == [2, 2, 2, 2]
    assert info["_final_info"].tolist() == [True, False, False, False]  # ended, its block not yet reset
    obs, rewards, terminated, _, info = envs.step([click, stop, click, click])
    # block 0 ends now and resets at once; member 0 waited (reply ignored); block 1 goes on
    assert terminated.tolist() == [False, True, False, False] and rewards[0] == 0.0 and rewards[1] != 0.0
    assert obs["turn"].tolist() == [0, 0, 3, 3]
    assert info["waiting"].tolist()[:2] == [True, False] and info["final_info"]["turn"][1] == 3
    assert info["sample_id"][0] == info["sample_id"][1] and info["sample_id"][2] == first_ids[2]
    assert info["turn"][0] == 0 and not envs.unwrapped.waiting.any()


def test_readme_states_the_autoreset_defaults_the_code_has():
    import inspect
    from pathlib import Path

    from segzero_env.envs.group_vector import GroupVectorEnv

    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8").split())
    assert 'resets finished episodes in the same step (`autoreset_mode="SameStep"`, the default)' in readme
    assert 'Gymnasium\'s own `"sync"` and `"async"` modes default to next-step autoreset' in readme
    default = inspect.signature(GroupVectorEnv).parameters["autoreset_mode"].default
    sync_default = inspect.signature(gym.vector.SyncVectorEnv).parameters["autoreset_mode"].default
    assert default == gym.vector.AutoresetMode.SAME_STEP and sync_default == gym.vector.AutoresetMode.NEXT_STEP

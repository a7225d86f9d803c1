"""QueryAttentionExtractor and BoxHeadPolicy: the query's words pick the box, and the policy starts from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from query_tasks import SPACE, VOCAB, token_id_env, two_blob_batch
from stable_baselines3 import PPO
from stable_baselines3.common.preprocessing import preprocess_obs

from segzero_env.wrappers import (
    BoxHeadPolicy,
    QueryAttentionExtractor,
    query_attention_policy_kwargs,
)


def test_the_query_words_move_the_box_to_the_object_they_name():
    # The box centre is read straight off the heat maps (no head): only keys that bind "red" to red pixels
    # and "blue" to blue ones can put it on the named blob, since both blobs are always there.
    torch.manual_seed(0)
    extractor = QueryAttentionExtractor(SPACE, channels=8, heads=2)
    optimiser = torch.optim.Adam(extractor.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(150):
        observations, answers = two_blob_batch(rng, 32)
        loss = torch.nn.functional.mse_loss(extractor(observations)[:, 0], answers)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    observations, answers = two_blob_batch(np.random.default_rng(1), 256)
    with torch.no_grad():
        error = torch.nn.functional.mse_loss(extractor(observations)[:, 0], answers).item()
    # Ignoring the query, the best guess is the midpoint of the two blobs: MSE about 0.14 here.
    assert error < 0.03, error


def test_an_untrained_extractor_starts_at_the_zero_action_box():
    # Untrained, the heat maps are nearly flat; their spread is the whole frame, but the size is read as the
    # zero action's centred half-frame box, which scores better (level-1 IoU 0.16 against 0.10).
    torch.manual_seed(0)
    space = spaces.Dict({"image": spaces.Box(0, 255, (3, 64, 64), np.uint8), "query": SPACE["query"]})
    query = torch.nn.functional.one_hot(torch.tensor([[2, 0], [3, 0], [2, 3], [0, 0]]), VOCAB).reshape(4, -1)
    observations = {"image": torch.rand(4, 3, 64, 64), "query": query.float()}
    with torch.no_grad():
        box = QueryAttentionExtractor(space, channels=8, heads=2)(observations)[:, :4]
        whole = QueryAttentionExtractor(space, channels=8, heads=2, size_shrink=0.0)(observations)[:, 2:4]
    assert box.abs().max() < 0.05, box
    assert whole.min() > 1.0, whole  # without the variance term: past the whole frame (the action clips it)


def test_padding_is_not_a_word():
    extractor = QueryAttentionExtractor(SPACE, channels=4, heads=1)
    one_hot = torch.nn.functional.one_hot(torch.tensor([[2, 0], [2, 2]]), VOCAB).reshape(2, -1).float()
    assert extractor.bag_of_words(one_hot).tolist() == [[0.0, 0.0, 1.0, 0.0]] * 2


def test_the_policy_starts_at_the_extractors_box_and_trains():
    torch.set_num_threads(1)
    env = token_id_env(32)
    model = PPO(
        BoxHeadPolicy, env, n_steps=32, batch_size=16, n_epochs=1, seed=0, device="cpu",
        policy_kwargs=query_attention_policy_kwargs(channels=8, heads=2),
    )  # fmt: skip
    policy = model.policy
    assert isinstance(policy.pi_features_extractor, QueryAttentionExtractor)
    assert policy.pi_features_extractor is not policy.vf_features_extractor
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    tensor_obs, _ = policy.obs_to_tensor(obs)
    with torch.no_grad():
        preprocessed = preprocess_obs(tensor_obs, policy.observation_space, normalize_images=policy.normalize_images)
        box = policy.pi_features_extractor(preprocessed)[0, :4].numpy()
    np.testing.assert_allclose(action[:4], np.clip(box, -1, 1), atol=1e-6)
    np.testing.assert_array_equal(action[4:], np.zeros(4, dtype=np.float32))  # both points at the box centre
    before = policy.pi_features_extractor.keys.weight.detach().clone()
    model.learn(total_timesteps=32)
    assert not torch.equal(before, policy.pi_features_extractor.keys.weight)  # the policy gradient reached the keys


def test_a_bag_of_words_query_is_refused_with_the_fix():
    space = spaces.Dict({"image": SPACE["image"], "query": spaces.Box(0, 1, (10,), np.float32)})
    with pytest.raises(ValueError, match="query_encoding='token-ids'"):
        QueryAttentionExtractor(space)


@pytest.mark.parametrize("hidden", [2, 64])  # narrower and wider than the box: either would be copied
def test_box_head_policy_refuses_a_hidden_actor_layer(hidden):
    env = token_id_env(4)
    kwargs = {**query_attention_policy_kwargs(channels=4, heads=1), "net_arch": {"pi": [hidden], "vf": [8]}}
    with pytest.raises(ValueError, match="net_arch"):
        PPO(BoxHeadPolicy, env, n_steps=8, batch_size=8, device="cpu", policy_kwargs=kwargs)

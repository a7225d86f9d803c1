"""QueryFiLMExtractor: the query steers the CNN, SB3 builds and trains with it, and the wrappers stay torch-free."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from query_tasks import SPACE, token_id_env, two_blob_batch
from stable_baselines3 import PPO

from segzero_env.wrappers import QueryFiLMExtractor, query_film_policy_kwargs


def test_importing_the_wrappers_loads_no_torch():
    code = "import sys, segzero_env.wrappers; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_the_query_decides_where_the_features_point():
    # Both blobs are always present, so only a network that reads the query through the CNN can answer.
    torch.manual_seed(0)
    extractor = QueryFiLMExtractor(SPACE, word_dim=8, query_dim=16, channels=(8, 8))
    head = torch.nn.Linear(extractor.features_dim, 1)
    optimiser = torch.optim.Adam([*extractor.parameters(), *head.parameters()], lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(150):
        observations, answers = two_blob_batch(rng, 32)
        loss = torch.nn.functional.mse_loss(head(extractor(observations)).squeeze(1), answers)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    observations, answers = two_blob_batch(np.random.default_rng(1), 256)
    with torch.no_grad():
        error = torch.nn.functional.mse_loss(head(extractor(observations)).squeeze(1), answers).item()
    # Ignoring the query, the best guess is the midpoint of the two blobs: MSE about 0.14 here.
    assert error < 0.03, error


def test_ppo_trains_with_the_extractor_on_token_ids():
    torch.set_num_threads(1)
    env = token_id_env(32)
    model = PPO(
        "MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0, device="cpu",
        policy_kwargs=query_film_policy_kwargs(query_dim=16, channels=(8, 8)),
    )  # fmt: skip
    assert isinstance(model.policy.features_extractor, QueryFiLMExtractor)
    model.learn(total_timesteps=32)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (8,)

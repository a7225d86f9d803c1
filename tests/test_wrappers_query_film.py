"""QueryFiLMExtractor: the query steers the CNN, SB3 builds and trains with it, and the wrappers stay torch-free."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO

from segzero_env.wrappers import QueryFiLMExtractor, make_sb3_env, query_film_policy_kwargs

VOCAB = 4  # 0 padding, 1 unknown, 2 "red", 3 "blue"
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def test_importing_the_wrappers_loads_no_torch():
    code = "import sys, segzero_env.wrappers; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def _two_blob_batch(rng: np.random.Generator, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A red and a blue 4x4 blob at random columns; the query names one; the answer is that blob's x in [-1, 1]."""
    images = np.zeros((n, 3, 16, 16), dtype=np.float32)
    ids = rng.integers(2, 4, n)
    answers = np.zeros(n, dtype=np.float32)
    for i in range(n):
        xs = rng.choice(np.arange(0, 13, 4), 2, replace=False)
        for colour, x in zip((RED, BLUE), xs, strict=True):
            images[i, :, 6:10, x : x + 4] = np.asarray(colour, dtype=np.float32)[:, None, None]
        answers[i] = (xs[0] if ids[i] == 2 else xs[1]) + 1.5
    query = torch.nn.functional.one_hot(torch.as_tensor(np.stack([ids, np.zeros(n, int)], 1)), VOCAB)
    observations = {"image": torch.as_tensor(images), "query": query.reshape(n, -1).float()}
    return observations, torch.as_tensor(answers / 15 * 2 - 1)


def test_the_query_decides_where_the_features_point():
    # Both blobs are always present, so only a network that reads the query through the CNN can answer.
    torch.manual_seed(0)
    space = spaces.Dict(
        {"image": spaces.Box(0, 255, (3, 16, 16), np.uint8), "query": spaces.MultiDiscrete([VOCAB] * 2)}
    )
    extractor = QueryFiLMExtractor(space, word_dim=8, query_dim=16, channels=(8, 8))
    head = torch.nn.Linear(extractor.features_dim, 1)
    optimiser = torch.optim.Adam([*extractor.parameters(), *head.parameters()], lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(150):
        observations, answers = _two_blob_batch(rng, 32)
        loss = torch.nn.functional.mse_loss(head(extractor(observations)).squeeze(1), answers)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    observations, answers = _two_blob_batch(np.random.default_rng(1), 256)
    with torch.no_grad():
        error = torch.nn.functional.mse_loss(head(extractor(observations)).squeeze(1), answers).item()
    # Ignoring the query, the best guess is the midpoint of the two blobs: MSE about 0.14 here.
    assert error < 0.03, error


def test_ppo_trains_with_the_extractor_on_token_ids():
    torch.set_num_threads(1)
    env = make_sb3_env(
        "ReasonSegShapes-v0", image_size=64, segmenter="box", query_encoding="token-ids",
        dataset_kwargs={"level": 1, "size": 32},
    )  # fmt: skip
    model = PPO(
        "MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0, device="cpu",
        policy_kwargs=query_film_policy_kwargs(query_dim=16, channels=(8, 8)),
    )  # fmt: skip
    assert isinstance(model.policy.features_extractor, QueryFiLMExtractor)
    model.learn(total_timesteps=32)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (8,)

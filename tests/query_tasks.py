"""Tasks for query-conditioned extractors: a two-blob toy batch and a level-1 shapes env with token-id queries."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

VOCAB = 4  # 0 padding, 1 unknown, 2 "red", 3 "blue"
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
SPACE = spaces.Dict({"image": spaces.Box(0, 255, (3, 16, 16), np.uint8), "query": spaces.MultiDiscrete([VOCAB] * 2)})


def two_blob_batch(rng: np.random.Generator, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A red and a blue 4x4 blob at random columns; the query names one; the answer is its centre x in [-1, 1].

    Ignoring the query, the best guess is the midpoint of the two blobs: an MSE of about 0.14.
    """
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


def token_id_env(size: int) -> Any:
    """``make_sb3_env`` on level 1 of the shapes set (two objects, the query names one), queries as token ids."""
    from segzero_env.wrappers import make_sb3_env

    return make_sb3_env(
        "ReasonSegShapes-v0", image_size=64, segmenter="box", query_encoding="token-ids",
        dataset_kwargs={"level": 1, "size": size},
    )  # fmt: skip

"""``QueryFiLMExtractor``: a Stable-Baselines3 features extractor whose CNN reads the image *through* the query.

SB3's ``MultiInputPolicy`` encodes each observation key on its own (a NatureCNN on the image, a flatten on
the query) and only concatenates the results, so nothing lets the query steer what the CNN looks for. On a
scene with two objects the policy then answers "somewhere between them": on ReasonSegShapes level 1 such
learners stay at the score of a fixed centred box.

This extractor follows the BabyAI / Minigrid recipe (Perez et al. 2018, FiLM; Chevalier-Boisvert et al.
2019, BabyAI): the query's words are embedded (a learned table over the token ids of
:class:`~segzero_env.wrappers.EncodeQuery`) and read by a GRU; from the query vector ``q`` each conv block
gets a per-channel scale and shift, ``h = relu((1 + gamma(q)) * conv(h) + beta(q))``, so the query chooses
which features survive. Two coordinate channels are appended to the image (CoordConv), and after every
block a few keypoint maps (a 1x1 conv) are summarised by a spatial soft-argmax: the expected ``x``, ``y``
of each map and its spread. A query-selected object then shows up directly as a position and an extent,
which is what a box action needs; the first block's maps see colours, the later ones shapes. A dense
summary of the last block and the query vector complete the features.

Use it through :func:`query_film_policy_kwargs` with ``make_sb3_env(..., query_encoding="token-ids")``
(a multi-hot ``"bag-of-words"`` / ``"hashed"`` query is accepted too, embedded by a linear layer)::

    from stable_baselines3 import PPO
    from segzero_env.wrappers import make_sb3_env, query_film_policy_kwargs

    env = make_sb3_env("ReasonSegShapes-v0", segmenter="box", image_size=64, query_encoding="token-ids",
                       dataset_kwargs={"level": 1})
    PPO("MultiInputPolicy", env, policy_kwargs=query_film_policy_kwargs()).learn(6_000)

This module imports torch and Stable-Baselines3; ``segzero_env.wrappers`` loads it only on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class FiLMConvBlock(nn.Module):
    """One conv layer whose output channels are scaled and shifted by the query: ``relu((1+g)*conv(x)+b)``.

    ``gamma`` and ``beta`` start at zero, so an untrained block is a plain conv + ReLU and the query's
    influence grows only as far as it helps.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, query_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=(kernel - 1) // 2)
        self.film = nn.Linear(query_dim, 2 * out_channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` (``B x C x H x W``) and modulate each output channel by the query (``B x query_dim``)."""
        gamma, beta = self.film(query).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return torch.relu((1 + gamma) * self.conv(x) + beta)


def spatial_soft_argmax(features: torch.Tensor) -> torch.Tensor:
    """Per channel, the softmax-weighted mean ``x``, ``y`` over the map and the standard deviations around them.

    Coordinates run over ``[-1, 1]`` across the map, as the action does.

    Args:
        features: ``(B, C, H, W)`` maps.

    Returns:
        ``(B, 4 * C)``: ``[mean_x, mean_y, std_x, std_y]`` of every channel, channel-major.

    >>> maps = torch.full((1, 1, 5, 5), -30.0)
    >>> maps[0, 0, 1, 4] = 30.0  # a single peak at row 1, column 4
    >>> [round(v, 2) for v in spatial_soft_argmax(maps)[0].tolist()]
    [1.0, -0.5, 0.0, 0.0]
    """
    batch, channels, height, width = features.shape
    weights = torch.softmax(features.reshape(batch, channels, height * width), dim=-1)
    ys = torch.linspace(-1.0, 1.0, height, device=features.device, dtype=features.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=features.device, dtype=features.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    grid_x, grid_y = grid_x.reshape(-1), grid_y.reshape(-1)
    mean_x = weights @ grid_x
    mean_y = weights @ grid_y
    std_x = (weights @ grid_x.square() - mean_x.square()).clamp_min(1e-6).sqrt()
    std_y = (weights @ grid_y.square() - mean_y.square()).clamp_min(1e-6).sqrt()
    return torch.stack([mean_x, mean_y, std_x, std_y], dim=-1).reshape(batch, 4 * channels)


def image_space_of(observation_space: spaces.Dict, key: str, owner: str) -> spaces.Box:
    """The channel-first image ``Box`` under ``key``; a ``ValueError`` naming ``owner`` when there is none."""
    image_space = observation_space.spaces.get(key)
    if not isinstance(image_space, spaces.Box) or len(image_space.shape) != 3:
        raise ValueError(f"{owner} needs a {key!r} image Box (C, H, W), got {image_space}")
    return image_space


def token_id_shape(query_space: spaces.MultiDiscrete) -> tuple[int, int]:
    """``(max_tokens, vocab_size)`` of a token-id query space; ``ValueError`` when positions differ in size."""
    nvec = np.asarray(query_space.nvec).reshape(-1)
    if len(set(nvec.tolist())) != 1:
        raise ValueError(f"token-id queries need one vocabulary size for every position, got {nvec}")
    return len(nvec), int(nvec[0])


class QueryFiLMExtractor(BaseFeaturesExtractor):
    """Features of an ``image`` + ``query`` observation, the CNN modulated by the query (FiLM).

    See the module docstring for the architecture. The features are the expected position and spread of
    each keypoint map (``4 * keypoints * len(channels)`` numbers), a dense summary of the last conv block
    (``flat_dim``)
    and the query vector itself (``query_dim``).

    Example:
        >>> from gymnasium import spaces
        >>> space = spaces.Dict({"image": spaces.Box(0, 255, (3, 48, 48), np.uint8),
        ...                      "query": spaces.MultiDiscrete([7] * 5)})
        >>> extractor = QueryFiLMExtractor(space, query_dim=16, channels=(8, 8), keypoints=2, flat_dim=24)
        >>> extractor.features_dim
        56
        >>> image = torch.rand(2, 3, 48, 48)
        >>> query = torch.nn.functional.one_hot(torch.tensor([[2, 3, 0, 0, 0], [4, 1, 5, 0, 0]]), 7)
        >>> extractor({"image": image, "query": query.reshape(2, -1).float()}).shape
        torch.Size([2, 56])

    Args:
        observation_space: ``Dict`` with an ``image`` (channel-first, as SB3 transposes it) and a ``query``:
            ``MultiDiscrete`` token ids (SB3 hands them over one-hot) or a ``Box`` multi-hot vector.
        word_dim: Size of a word embedding.
        query_dim: Size of the query vector (the GRU's hidden state).
        channels: Output channels of the conv blocks (the first two halve the resolution, the rest keep it).
        keypoints: Keypoint maps per conv block (a 1x1 conv on the block's output, softmax over the map with
            a learned temperature) whose expected position and spread are features. The first block's maps
            see colours almost directly, so "the red shape" can be found after little training; later
            blocks see shapes.
        flat_dim: Size of the dense summary of the last block (average-pooled to 8 x 8, then linear).
        coord_channels: Append ``x`` and ``y`` coordinate maps to the image.
        image_key: Observation key of the image.
        query_key: Observation key of the query.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        word_dim: int = 32,
        query_dim: int = 64,
        channels: Sequence[int] = (16, 32, 32),
        keypoints: int = 8,
        flat_dim: int = 128,
        coord_channels: bool = True,
        image_key: str = "image",
        query_key: str = "query",
    ) -> None:
        image_space = image_space_of(observation_space, image_key, "QueryFiLMExtractor")
        query_space = observation_space.spaces.get(query_key)
        if not isinstance(query_space, (spaces.MultiDiscrete, spaces.Box)):
            raise ValueError(
                f"QueryFiLMExtractor needs a {query_key!r} MultiDiscrete (query_encoding='token-ids') or Box "
                f"(bag-of-words / hashed) space, got {query_space}"
            )
        if len(channels) < 1:
            raise ValueError("channels must name at least one conv block")
        features_dim = 4 * keypoints * len(channels) + flat_dim + query_dim
        super().__init__(observation_space, features_dim)
        self.image_key = image_key
        self.query_key = query_key
        self.coord_channels = coord_channels
        if isinstance(query_space, spaces.MultiDiscrete):
            self.max_tokens, self.vocab_size = token_id_shape(query_space)
            # A linear map of a one-hot row is a table lookup; row 0 (padding) is masked out below.
            self.embed = nn.Linear(self.vocab_size, word_dim, bias=False)
            self.gru: nn.GRU | None = nn.GRU(word_dim, query_dim, batch_first=True)
            self.bag: nn.Module | None = None
        else:
            self.max_tokens, self.vocab_size = 0, int(np.prod(query_space.shape))
            self.gru = None
            self.bag = nn.Sequential(nn.Linear(self.vocab_size, query_dim), nn.ReLU())
        in_channels = image_space.shape[0] + (2 if coord_channels else 0)
        blocks = []
        for index, out_channels in enumerate(channels):
            stride = 2 if index < 2 else 1
            blocks.append(FiLMConvBlock(in_channels, out_channels, 4 if stride == 2 else 3, stride, query_dim))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        # Keypoint maps: a 1x1 conv gives logits whose softmax over the map is sharp enough to point somewhere.
        self.keypoints = nn.ModuleList(nn.Conv2d(c, keypoints, 1) for c in channels)
        self.log_temperature = nn.Parameter(torch.full((len(channels),), float(np.log(10.0))))
        self.flat = nn.Sequential(
            nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(in_channels * 64, flat_dim), nn.ReLU()
        )

    def encode_query(self, query: torch.Tensor) -> torch.Tensor:
        """The ``(B, query_dim)`` query vector from SB3's preprocessed query (one-hot ids or a multi-hot vector)."""
        if self.gru is None:
            return self.bag(query)  # type: ignore[misc]
        one_hot = query.reshape(query.shape[0], self.max_tokens, self.vocab_size)
        words = self.embed(one_hot)
        lengths = (1.0 - one_hot[..., 0]).sum(dim=1).clamp_min(1).long().cpu()
        packed = nn.utils.rnn.pack_padded_sequence(words, lengths, batch_first=True, enforce_sorted=False)
        _, hidden = self.gru(packed)
        return hidden[-1]

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, features_dim)`` features of a batch of SB3-preprocessed observations."""
        query = self.encode_query(observations[self.query_key].float())
        x = observations[self.image_key].float()
        if self.coord_channels:
            batch, _, height, width = x.shape
            ys = (
                torch.linspace(-1.0, 1.0, height, device=x.device).view(1, 1, height, 1).expand(batch, 1, height, width)
            )
            xs = torch.linspace(-1.0, 1.0, width, device=x.device).view(1, 1, 1, width).expand(batch, 1, height, width)
            x = torch.cat([x, xs, ys], dim=1)
        points = []
        for index, (block, keypoints) in enumerate(zip(self.blocks, self.keypoints, strict=True)):
            x = block(x, query)
            points.append(spatial_soft_argmax(keypoints(x) * self.log_temperature[index].exp()))
        return torch.cat([*points, self.flat(x), query], dim=1)

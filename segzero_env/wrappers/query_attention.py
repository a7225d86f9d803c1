"""``QueryAttentionExtractor`` and ``BoxHeadPolicy``: an SB3 learner whose box is where the query points.

The query's words (a bag of the :class:`~segzero_env.wrappers.EncodeQuery` token ids) give a few key
vectors; each key is matched against the feature vector of every pixel of a small CNN, so each head
is a heat map of "where this query's words match the image". A spatial soft-argmax turns every map
into a box: the expected ``x``, ``y`` are its centre and the spread (``2 sqrt(3)`` standard deviations,
the side of a uniform square with that spread) its size, written in the ``center-size`` action layout of
:class:`~segzero_env.wrappers.ContinuousBoxAction`, less ``size_shrink`` times the variance. Untrained,
the maps are nearly flat and a flat map's spread is the whole frame (IoU 0.10 on level 1); the variance
term (small for a map on one object) reads it as the zero action's centred half-frame box instead (IoU
0.16), so the episodes go to binding words rather than to shrinking the box first. The query also weighs
the heads (a softmax, uniform at the start). The features are that weighted box first, then the head
weights and every head's box.

:class:`BoxHeadPolicy` is SB3's ``MultiInputActorCriticPolicy`` whose action mean *starts* as those
first four features (the points at the box centre) instead of SB3's near-zero head: the policy
gradient then reaches the key vectors from the first update, and binding a word ("red", "the star")
to what it looks like is what the learner spends its episodes on. With SB3's own head (orthogonal
init, gain 0.01) drafts of this extractor stayed near the score of a fixed box on level 1 (0.16-0.17
after 6,000 episodes), as the FiLM learner does.

Use both through :func:`~segzero_env.wrappers.query_attention_policy_kwargs` with
``make_sb3_env(..., query_encoding="token-ids")``; an on-policy actor-critic algorithm (PPO, A2C)::

    from stable_baselines3 import PPO
    from segzero_env.wrappers import BoxHeadPolicy, make_sb3_env, query_attention_policy_kwargs

    env = make_sb3_env("ReasonSegShapes-v0", segmenter="box", image_size=64, query_encoding="token-ids",
                       dataset_kwargs={"level": 1})
    PPO(BoxHeadPolicy, env, learning_rate=3e-3, policy_kwargs=query_attention_policy_kwargs()).learn(6_000)

This module imports torch and Stable-Baselines3; ``segzero_env.wrappers`` loads it only on first use.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from segzero_env.wrappers.query_film import image_space_of, spatial_soft_argmax, token_id_shape

BOX_FEATURES = 4
"""The first features of :class:`QueryAttentionExtractor`: the query's box as a ``center-size`` action."""

_SIDE_PER_STD = 2.0 * math.sqrt(3.0)  # a uniform square of side s has standard deviation s / sqrt(12)


class QueryAttentionExtractor(BaseFeaturesExtractor):
    """Heat maps of where the query's words match the image, read out as boxes (see the module docstring).

    Example:
        >>> import numpy as np
        >>> space = spaces.Dict({"image": spaces.Box(0, 255, (3, 32, 32), np.uint8),
        ...                      "query": spaces.MultiDiscrete([9] * 4)})
        >>> extractor = QueryAttentionExtractor(space, channels=8, heads=2)
        >>> extractor.features_dim  # box (4) + head weights (2) + each head's box (2 x 4)
        14
        >>> query = torch.nn.functional.one_hot(torch.tensor([[3, 5, 0, 0]]), 9).reshape(1, -1).float()
        >>> features = extractor({"image": torch.rand(1, 3, 32, 32), "query": query})
        >>> features.shape, bool(features[0, :2].abs().max() <= 1.0)  # the box centre lies in the frame
        (torch.Size([1, 14]), True)

    Args:
        observation_space: ``Dict`` with a channel-first ``image`` (as SB3 transposes it) and a ``query`` of
            token ids (``MultiDiscrete``, ``query_encoding="token-ids"``; id 0 is padding).
        channels: Feature channels of the CNN (two conv layers, the first halving the resolution).
        heads: Key vectors (heat maps) per query.
        temperature: Initial sharpness of the soft-argmax (learned).
        size_shrink: Subtracted from each box size per unit variance of its map. The default 3 reads a flat
            64x64 image's map (standard deviation 0.6) as the zero action's size 0 and a map on a quarter-frame
            object (0.14) as that object's size less 0.06; 0 reads a flat map as the whole frame.
        image_key: Observation key of the image.
        query_key: Observation key of the query.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        channels: int = 32,
        heads: int = 4,
        temperature: float = 10.0,
        size_shrink: float = 3.0,
        image_key: str = "image",
        query_key: str = "query",
    ) -> None:
        image_space = image_space_of(observation_space, image_key, "QueryAttentionExtractor")
        query_space = observation_space.spaces.get(query_key)
        if not isinstance(query_space, spaces.MultiDiscrete):
            raise ValueError(
                f"QueryAttentionExtractor needs a {query_key!r} MultiDiscrete space of token ids; build the env "
                f"with make_sb3_env(..., query_encoding='token-ids'), got {query_space}"
            )
        max_tokens, vocab_size = token_id_shape(query_space)
        if heads < 1 or channels < 1 or temperature <= 0:
            raise ValueError(
                f"heads and channels must be >= 1 and temperature > 0, got {heads}, {channels}, {temperature}"
            )
        super().__init__(observation_space, BOX_FEATURES + heads + BOX_FEATURES * heads)
        self.image_key, self.query_key = image_key, query_key
        self.max_tokens, self.vocab_size = max_tokens, vocab_size
        self.heads, self.channels, self.size_shrink = heads, channels, size_shrink
        self.cnn = nn.Sequential(
            nn.Conv2d(image_space.shape[0], channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
        )
        self.keys = nn.Linear(self.vocab_size, heads * channels)
        self.head_weights = nn.Linear(self.vocab_size, heads)
        nn.init.zeros_(self.head_weights.weight)
        nn.init.zeros_(self.head_weights.bias)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    def bag_of_words(self, query: torch.Tensor) -> torch.Tensor:
        """``(B, vocab)`` 0/1 word presence from SB3's one-hot token ids; the padding id counts as absent."""
        one_hot = query.reshape(query.shape[0], self.max_tokens, self.vocab_size)
        present = one_hot.amax(dim=1)
        return torch.cat([torch.zeros_like(present[:, :1]), present[:, 1:]], dim=1)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, features_dim)`` features of a batch of SB3-preprocessed observations."""
        words = self.bag_of_words(observations[self.query_key].float())
        features = self.cnn(observations[self.image_key].float())
        keys = self.keys(words).view(-1, self.heads, self.channels) / math.sqrt(self.channels)
        heat = torch.einsum("bkc,bchw->bkhw", keys, features) * self.log_temperature.exp()
        stats = spatial_soft_argmax(heat).view(-1, self.heads, 4)
        sizes = _SIDE_PER_STD * stats[..., 2:] - 1.0 - self.size_shrink * stats[..., 2:].square()
        boxes = torch.cat([stats[..., :2], sizes], dim=-1)
        weights = torch.softmax(self.head_weights(words), dim=-1)
        box = (weights.unsqueeze(-1) * boxes).sum(dim=1)
        return torch.cat([box, weights, boxes.flatten(1)], dim=1)


class BoxHeadPolicy(MultiInputActorCriticPolicy):
    """SB3's ``MultiInputActorCriticPolicy`` whose action mean starts as the first four features.

    The action head is initialised to copy features ``0-3`` (a ``center-size`` box, as
    :class:`QueryAttentionExtractor` writes it) to action components ``0-3`` and to put both points at
    the box centre (zeros); everything stays trainable. Use ``net_arch={"pi": [], ...}`` so the head
    sees the extractor's features directly (:func:`~segzero_env.wrappers.query_attention_policy_kwargs`
    does), and an action of at least four components.
    """

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        head = self.action_net
        # The head must read the extractor's features themselves: any hidden actor layer would be copied instead.
        on_features = isinstance(head, nn.Linear) and head.in_features == self.features_dim >= BOX_FEATURES
        if not on_features or head.out_features < BOX_FEATURES:
            raise ValueError(
                "BoxHeadPolicy needs its linear action head directly on at least 4 extractor features and a Box "
                "action of at least 4 components: pass net_arch={'pi': [], 'vf': [...]} and a ContinuousBoxAction env"
            )
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.weight[:BOX_FEATURES, :BOX_FEATURES] = torch.eye(BOX_FEATURES)

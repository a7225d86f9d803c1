"""``make_sb3_env``: the reasoning-segmentation env as Stable-Baselines3 takes it.

Stable-Baselines3 accepts ``Box`` / ``Discrete`` / ``MultiDiscrete`` / ``MultiBinary`` actions and
``Box`` or flat ``Dict`` observations (uint8 images), never text. The composed env is:

- observation ``Dict(image=Box(0, 255, (R, R, 3), uint8), query=<encoding>)`` (see
  :class:`~segzero_env.wrappers.ResizeImage` and :class:`~segzero_env.wrappers.EncodeQuery`);
  other uint8 maps of the image's size are resized with it, other numeric keys pass through,
  and any other text key is dropped;
- action ``Box(-1, 1, (8,), float32)``: a box and two points (:class:`~segzero_env.wrappers.ContinuousBoxAction`);
  for multi-turn envs (``max_turns > 1``) ``Box(-1, 1, (11,), float32)``, the same plus a refinement
  click and its sign (:class:`~segzero_env.wrappers.ContinuousClickAction`), and the observation
  keeps ``turn`` and ``prev_mask`` as an ``R x R x 1`` image (:class:`~segzero_env.wrappers.MaskToImage`);
- reward: the env's reward preset, unchanged;
- info: the env's keys plus flat ``iou``, ``parse_failed`` and ``reward_term_<name>``
  (:class:`~segzero_env.wrappers.FlattenInfo`), ready for ``Monitor(info_keywords=...)``.

An episode is one step (``terminated=True`` after the answer), so learning here is a contextual
bandit: returns equal immediate rewards, ``gamma`` has no effect, and value functions estimate the
expected reward of the current image and query.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from segzero_env.wrappers.box_action import ContinuousBoxAction
from segzero_env.wrappers.click_action import ContinuousClickAction
from segzero_env.wrappers.encode_query import EncodeQuery
from segzero_env.wrappers.flatten_info import FlattenInfo
from segzero_env.wrappers.mask_image import MaskToImage
from segzero_env.wrappers.resize_image import ResizeImage

SB3_OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def make_sb3_env(
    env_id: str | gym.Env = "ReasonSegShapes-v0",
    *,
    obs_size: int | None = 64,
    query_encoding: str = "bag-of-words",
    query_kwargs: dict[str, Any] | None = None,
    action_kwargs: dict[str, Any] | None = None,
    monitor: bool = False,
    **env_kwargs: Any,
) -> gym.Env:
    """Build ``env_id`` and wrap it for Stable-Baselines3.

    Example:
        >>> from stable_baselines3.common.env_checker import check_env
        >>> from segzero_env.wrappers import make_sb3_env
        >>> env = make_sb3_env("ReasonSegShapes-v0", image_size=64, segmenter="box", query_encoding="hashed")
        >>> sorted(env.observation_space.spaces), env.action_space.shape
        (['image', 'query'], (8,))
        >>> check_env(env)
        >>> _ = env.reset(seed=0)
        >>> _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> terminated, truncated, 0.0 <= info["iou"] <= 1.0
        (True, False, True)

    Args:
        env_id: Registered id (``"ReasonSegShapes-v0"``, ...) or an already built env.
        obs_size: Side of the image the policy sees (``None`` keeps the env's ``image_size``). SB3's
            default CNN needs at least 36.
        query_encoding: ``"bag-of-words"``, ``"hashed"`` or ``"token-ids"`` (see :class:`EncodeQuery`).
        query_kwargs: Extra arguments for :class:`EncodeQuery` (``vocabulary``, ``dim``, ``max_tokens``, ...).
            For an evaluation env pass ``{"vocabulary": train_env.get_wrapper_attr("vocabulary")}``.
        action_kwargs: Extra arguments for :class:`ContinuousBoxAction` (``schema``, ``points_frame``, ...).
        monitor: Wrap the result in Stable-Baselines3's ``Monitor`` logging :func:`info_keywords`.
        **env_kwargs: Passed to ``gym.make`` (``image_size``, ``segmenter``, ``dataset_kwargs``, ``reward``, ...).
    """
    if isinstance(env_id, gym.Env):
        if env_kwargs:
            raise ValueError(f"env kwargs {sorted(env_kwargs)} given with a built env; pass them to gym.make instead")
        env = env_id
    else:
        env = gym.make(env_id, **env_kwargs)
    multi_turn = getattr(env.unwrapped, "max_turns", 1) > 1
    env = FlattenInfo(env)
    action_wrapper = ContinuousClickAction if multi_turn else ContinuousBoxAction
    env = action_wrapper(env, **(action_kwargs or {}))
    env = EncodeQuery(env, encoding=query_encoding, **(query_kwargs or {}))
    if obs_size is not None:
        env = ResizeImage(env, size=obs_size, keys=_image_like_keys(env.observation_space))
    if multi_turn:
        env = MaskToImage(env, size=obs_size)
    obs_spaces = env.observation_space.spaces
    leftover = [key for key, space in obs_spaces.items() if not isinstance(space, SB3_OBSERVATION_SPACES)]
    if leftover:
        # Text keys other than the query (e.g. a rendering for language policies) mean nothing to a vector learner.
        kept = [key for key in env.observation_space.spaces if key not in leftover]
        env = gym.wrappers.FilterObservation(env, filter_keys=kept)
    if monitor:
        from stable_baselines3.common.monitor import Monitor

        env = Monitor(env, info_keywords=info_keywords(env))
    return env


def query_film_policy_kwargs(**extractor_kwargs: Any) -> dict[str, Any]:
    """``policy_kwargs`` that give an SB3 ``MultiInputPolicy`` the query-conditioned CNN.

    The features extractor is :class:`~segzero_env.wrappers.query_film.QueryFiLMExtractor`: the query's
    words, embedded and read by a GRU, scale and shift every conv block (FiLM), so the query decides what
    the CNN looks for. Pair it with ``make_sb3_env(..., query_encoding="token-ids")``. Importing torch is
    left to the algorithm that builds the policy.

    Example:
        >>> from stable_baselines3 import PPO
        >>> env = make_sb3_env("ReasonSegShapes-v0", image_size=64, segmenter="box", query_encoding="token-ids",
        ...                    dataset_kwargs={"level": 1, "size": 8})
        >>> model = PPO("MultiInputPolicy", env, policy_kwargs=query_film_policy_kwargs(query_dim=32), device="cpu")
        >>> type(model.policy.features_extractor).__name__
        'QueryFiLMExtractor'

    Args:
        **extractor_kwargs: Arguments of the extractor (``word_dim``, ``query_dim``, ``channels``,
            ``coord_channels``).
    """
    from segzero_env.wrappers.query_film import QueryFiLMExtractor

    return {"features_extractor_class": QueryFiLMExtractor, "features_extractor_kwargs": dict(extractor_kwargs)}


def query_attention_policy_kwargs(**extractor_kwargs: Any) -> dict[str, Any]:
    """``policy_kwargs`` for :class:`~segzero_env.wrappers.query_attention.BoxHeadPolicy` with the query-attention CNN.

    The features extractor is :class:`~segzero_env.wrappers.query_attention.QueryAttentionExtractor` (key
    vectors from the query's words matched against every pixel, each heat map read out as a box). The
    actor's head sits directly on its features (``net_arch["pi"] == []``) so that ``BoxHeadPolicy`` can
    start the action at the query's box; the critic gets its own extractor and a ``[64, 64]`` MLP, and
    SB3's orthogonal initialisation is off so the copied head is kept. Pair it with
    ``make_sb3_env(..., query_encoding="token-ids")`` and pass ``BoxHeadPolicy`` as the policy.

    Example:
        >>> from stable_baselines3 import PPO
        >>> from segzero_env.wrappers import BoxHeadPolicy
        >>> env = make_sb3_env("ReasonSegShapes-v0", image_size=64, segmenter="box", query_encoding="token-ids",
        ...                    dataset_kwargs={"level": 1, "size": 8})
        >>> model = PPO(BoxHeadPolicy, env, policy_kwargs=query_attention_policy_kwargs(channels=8), device="cpu")
        >>> type(model.policy.features_extractor).__name__
        'QueryAttentionExtractor'

    Args:
        **extractor_kwargs: Arguments of the extractor (``channels``, ``heads``, ``temperature``, ``size_shrink``).
    """
    from segzero_env.wrappers.query_attention import QueryAttentionExtractor

    return {
        "features_extractor_class": QueryAttentionExtractor,
        "features_extractor_kwargs": dict(extractor_kwargs),
        "net_arch": {"pi": [], "vf": [64, 64]},
        "ortho_init": False,
        "share_features_extractor": False,
    }


def _image_like_keys(space: spaces.Dict) -> tuple[str, ...]:
    # Every uint8 map the size of the image (e.g. a previous-mask key of refinement episodes) is resized with it.
    image = space.spaces["image"]
    return tuple(
        key
        for key, sub in space.spaces.items()
        if isinstance(sub, spaces.Box)
        and sub.dtype == np.uint8
        and sub.shape[:2] == image.shape[:2]
        and len(sub.shape) in (2, 3)
    )


def info_keywords(env: gym.Env) -> tuple[str, ...]:
    """Return the flat info keys of an env holding :class:`FlattenInfo`, for ``Monitor(info_keywords=...)``.

    >>> env = make_sb3_env("ReasonSegShapes-v0", image_size=64, segmenter="box", query_encoding="hashed")
    >>> info_keywords(env)[:3]
    ('iou', 'parse_failed', 'reward_term_think_format')
    """
    return tuple(env.get_wrapper_attr("info_keywords")())

"""Adapters from the text env to learners that take vectors (Stable-Baselines3 and the like).

One wrapper per module, each named ``<Verb><Target>``; :func:`make_sb3_env` composes them.
:class:`QueryFiLMExtractor` (a query-conditioned CNN for SB3 policies, see :func:`query_film_policy_kwargs`),
:class:`QueryAttentionExtractor` and :class:`BoxHeadPolicy` (see :func:`query_attention_policy_kwargs`)
import torch, so they load on first access only.
"""

from typing import Any

from segzero_env.wrappers.box_action import ACTION_LAYOUT, ACTION_LAYOUTS, ContinuousBoxAction
from segzero_env.wrappers.click_action import CLICK_ACTION_LAYOUT, ContinuousClickAction
from segzero_env.wrappers.encode_query import EncodeQuery, build_vocabulary, tokenize
from segzero_env.wrappers.flatten_info import FlattenInfo
from segzero_env.wrappers.mask_image import MaskToImage
from segzero_env.wrappers.resize_image import ResizeImage
from segzero_env.wrappers.sb3 import (
    info_keywords,
    make_sb3_env,
    query_attention_policy_kwargs,
    query_film_policy_kwargs,
)

__all__ = [
    "ACTION_LAYOUT",
    "ACTION_LAYOUTS",
    "BoxHeadPolicy",
    "CLICK_ACTION_LAYOUT",
    "ContinuousBoxAction",
    "ContinuousClickAction",
    "EncodeQuery",
    "FlattenInfo",
    "MaskToImage",
    "QueryAttentionExtractor",
    "QueryFiLMExtractor",
    "ResizeImage",
    "build_vocabulary",
    "info_keywords",
    "make_sb3_env",
    "query_attention_policy_kwargs",
    "query_film_policy_kwargs",
    "tokenize",
]


def __getattr__(name: str) -> Any:
    # The extractors subclass torch modules: load it on first access so this package stays torch-free.
    if name == "QueryFiLMExtractor":
        from segzero_env.wrappers.query_film import QueryFiLMExtractor

        return QueryFiLMExtractor
    if name in ("QueryAttentionExtractor", "BoxHeadPolicy"):
        from segzero_env.wrappers import query_attention

        return getattr(query_attention, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

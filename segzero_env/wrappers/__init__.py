"""Adapters from the text env to learners that take vectors (Stable-Baselines3 and the like).

One wrapper per module, each named ``<Verb><Target>``; :func:`make_sb3_env` composes them.
"""

from segzero_env.wrappers.box_action import ACTION_LAYOUT, ACTION_LAYOUTS, ContinuousBoxAction
from segzero_env.wrappers.click_action import CLICK_ACTION_LAYOUT, ContinuousClickAction
from segzero_env.wrappers.encode_query import EncodeQuery, build_vocabulary, tokenize
from segzero_env.wrappers.flatten_info import FlattenInfo
from segzero_env.wrappers.mask_image import MaskToImage
from segzero_env.wrappers.resize_image import ResizeImage
from segzero_env.wrappers.sb3 import info_keywords, make_sb3_env

__all__ = [
    "ACTION_LAYOUT",
    "ACTION_LAYOUTS",
    "CLICK_ACTION_LAYOUT",
    "ContinuousBoxAction",
    "ContinuousClickAction",
    "EncodeQuery",
    "FlattenInfo",
    "MaskToImage",
    "ResizeImage",
    "build_vocabulary",
    "info_keywords",
    "make_sb3_env",
    "tokenize",
]

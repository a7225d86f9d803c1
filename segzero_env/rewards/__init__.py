"""Reward terms (pure functions of one reply and its ground truth) and the presets that weight them."""

from segzero_env.rewards.presets import DEFAULT_PRESET, PRESETS, RewardPreset, make_preset
from segzero_env.rewards.terms import (
    BOX_IOU_THRESHOLD,
    BOX_L1_THRESHOLD,
    POINTS_DISTANCE_THRESHOLD,
    TERM_NAMES,
    TERM_RANGES,
    VR_POINT_DISTANCE_THRESHOLD,
    RewardInput,
    compute_terms,
    unavailable_terms,
)

__all__ = [
    "BOX_IOU_THRESHOLD",
    "BOX_L1_THRESHOLD",
    "DEFAULT_PRESET",
    "POINTS_DISTANCE_THRESHOLD",
    "PRESETS",
    "TERM_NAMES",
    "TERM_RANGES",
    "VR_POINT_DISTANCE_THRESHOLD",
    "RewardInput",
    "RewardPreset",
    "compute_terms",
    "make_preset",
    "unavailable_terms",
]

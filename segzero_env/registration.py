"""Environment ids. String entry points keep heavy modules unloaded until ``gym.make``."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENV_ENTRY_POINT = "segzero_env.envs.reasonseg_env:ReasonSegEnv"
VECTOR_ENTRY_POINT = "segzero_env.envs.group_vector:GroupVectorEnv"

ENV_SPECS: dict[str, dict] = {
    # The real-data ids leave segmenter_kwargs unset (SAM2's default model is "large") so that
    # gym.make(id, segmenter="box") works without also clearing the kwargs.
    "ReasonSeg-v0": {"dataset": "reasonseg", "split": "val", "segmenter": "sam2"},
    "ReasonSegShapes-v0": {"dataset": "shapes", "split": "train", "segmenter": "grabcut"},
    "RefCOCO-v0": {"dataset": "refcoco", "split": "val", "segmenter": "sam2"},
    "RefCOCOPlus-v0": {"dataset": "refcoco+", "split": "val", "segmenter": "sam2"},
    "RefCOCOg-v0": {"dataset": "refcocog", "split": "val", "segmenter": "sam2"},
    # gRefCOCO (GRES): several targets or none; an empty answer is right on a no-target sample.
    "gRefCOCO-v0": {"dataset": "grefcoco", "split": "val", "segmenter": "sam2"},
    # Seg-Zero's GRPO training set has no masks: the seg-zero preset rewards box and points only.
    "RefCOCOg9k-v0": {"dataset": "segzero-train", "split": "train", "segmenter": "sam2", "reward": "seg-zero"},
}


def register_envs() -> None:
    """Register every id once (safe to call again)."""
    for env_id, kwargs in ENV_SPECS.items():
        if env_id in registry:
            continue
        register(
            id=env_id,
            entry_point=ENV_ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            kwargs=kwargs,
            max_episode_steps=None,
        )

"""Environment ids. String entry points keep heavy modules unloaded until ``gym.make``."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENV_ENTRY_POINT = "segzero_env.envs.reasonseg_env:ReasonSegEnv"
VECTOR_ENTRY_POINT = "segzero_env.envs.group_vector:GroupVectorEnv"

ENV_SPECS: dict[str, dict] = {
    "ReasonSeg-v0": {
        "dataset": "reasonseg",
        "split": "val",
        "segmenter": "sam2",
        "segmenter_kwargs": {"model": "large"},
    },
    "ReasonSegShapes-v0": {"dataset": "shapes", "split": "train", "segmenter": "grabcut"},
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

"""The names ``segzero eval`` accepts, read from the registries, and the check of names typed on its line.

The help text and the checks both call the registries (policies, segmenters, reward presets,
datasets), so a name registered there is listed and accepted without editing the command.

>>> "oracle-refine" in registered_names()["policy"] and "hf-sam2" in registered_names()["segmenter"]
True
>>> check_name("--policy ", "policy", "oracel")
Traceback (most recent call last):
...
ValueError: --policy 'oracel' is not a policy; known: full-image, hf, ... (did you mean 'oracle'?)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

NAMED_ENV_KWARGS = ("segmenter", "reward", "dataset")
"""``--env-kwargs`` keys whose value is a registered name."""


def registered_names() -> dict[str, list[str]]:
    """Every registered name, by kind: ``policy``, ``segmenter``, ``reward``, ``dataset``."""
    from segzero_env.datasets import dataset_names
    from segzero_env.policies.base import policy_names
    from segzero_env.rewards.presets import PRESETS
    from segzero_env.segmenters import segmenter_names

    return {
        "policy": list(policy_names()),
        "segmenter": list(segmenter_names()),
        "reward": list(PRESETS),
        "dataset": list(dataset_names()),
    }


def check_name(label: str, kind: str, value: Any) -> None:
    """Raise a one-line ``ValueError`` naming the argument when ``value`` is not a registered ``kind``.

    Args:
        label: How the argument is written before its value (``"--policy "``, ``"--env-kwargs reward="``).
        kind: ``"policy"``, ``"segmenter"``, ``"reward"`` or ``"dataset"``.
        value: The value given; ``"module:attr"`` strings (checked later, against
            ``--allow-code``) and non-strings pass.
    """
    if not isinstance(value, str) or ":" in value:
        return
    known = registered_names()[kind]
    if value in known:
        return
    close = difflib.get_close_matches(value, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"{label}{value!r} is not a {kind}; known: {', '.join(known)}{hint}")


def env_arguments(env_id: str) -> list[str] | None:
    """The keyword arguments a registered id of this package takes (``None`` for other envs)."""
    import inspect

    import gymnasium as gym

    from segzero_env.registration import ENV_ENTRY_POINT

    spec = gym.registry.get(env_id)
    if spec is None or spec.entry_point != ENV_ENTRY_POINT:
        return None
    from segzero_env.envs.reasonseg_env import ReasonSegEnv

    return [name for name in inspect.signature(ReasonSegEnv).parameters if name != "self"]


def check_command_names(env_id: str, policy: str | None, env_kwargs: Mapping[str, Any]) -> None:
    """Check ``--policy``, the ``--env-kwargs`` keys and their name-valued values before any work starts."""
    if policy is not None:
        check_name("--policy ", "policy", policy)
    known = env_arguments(env_id)
    for key in env_kwargs:
        if known is not None and key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"--env-kwargs {key}: {env_id} takes no such argument; known: {', '.join(known)}{hint}")
    for key in NAMED_ENV_KWARGS:
        if key in env_kwargs:
            check_name(f"--env-kwargs {key}=", key, env_kwargs[key])

"""``FlattenInfo``: nested step ``info`` entries copied to flat numeric keys for loggers."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

from segzero_env.rewards import TERM_NAMES


class FlattenInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Copy each reward term to ``info[prefix + name]`` and add ``info["parse_failed"]`` (0.0 or 1.0).

    Loggers such as Stable-Baselines3's ``Monitor(info_keywords=...)`` read one flat key per
    value. The env's own keys (``iou``, ``reward_terms``, ``parse_failure``, ...) are kept as they are.
    :meth:`info_keywords` lists the flat keys (known before the first step), for ``Monitor``.

    Example:
        >>> import gymnasium as gym
        >>> import segzero_env
        >>> from segzero_env.wrappers import FlattenInfo
        >>> env = FlattenInfo(gym.make("ReasonSegShapes-v0", image_size=64, segmenter="box"))
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step("not an answer")
        >>> info["parse_failed"], info["iou"]
        (1.0, 0.0)
        >>> all(isinstance(info[key], float) for key in env.info_keywords())
        True

    Args:
        env: Env whose step info holds ``reward_terms`` (a dict of floats) and ``parse_failure``.
        prefix: Prefix of the flat reward-term keys.
    """

    def __init__(self, env: gym.Env, prefix: str = "reward_term_") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, prefix=prefix)
        gym.Wrapper.__init__(self, env)
        self.prefix = prefix
        self._term_names: tuple[str, ...] = tuple(TERM_NAMES)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and add the flat keys to its info."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        terms = info.get("reward_terms") or {}
        # Keep the package's terms first and append any custom term the env reports, in first-seen order.
        self._term_names = (*self._term_names, *(name for name in terms if name not in self._term_names))
        flat = {f"{self.prefix}{name}": float(value) for name, value in terms.items()}
        flat["parse_failed"] = float(info.get("parse_failure") is not None)
        if "iou" in info:
            flat["iou"] = float(info["iou"])
        return obs, reward, terminated, truncated, {**info, **flat}

    def info_keywords(self) -> tuple[str, ...]:
        """Return the flat keys: ``iou``, ``parse_failed`` and one per reward term (the package's and any seen)."""
        return ("iou", "parse_failed", *(f"{self.prefix}{name}" for name in self._term_names))

"""Groups of episodes on one sample, rewards centred per group: GRPO's baseline for Stable-Baselines3 learners.

Every episode of these envs is one step, so a learner sees one (image, query) and one reward. Most of the
spread of rewards comes from the samples (an easy image scores higher whatever the action), and a critic
must first learn to predict it before the policy gradient can tell good actions from lucky samples. GRPO,
which Seg-Zero trains with, sidesteps the critic: it answers each sample ``G`` times and compares the
answers with each other. :func:`make_group_vec_env` does the same for any SB3 algorithm:

- ``G`` copies of the env are stepped together (an SB3 ``DummyVecEnv``), and :class:`ShareSampleIndex`
  makes all ``G`` draw the same sample at every reset (one shared, seeded sequence of sample indices);
- :class:`CenterGroupRewards` replaces each reward by its difference to the mean of its group, so the
  return of an action is how much better it did than the group's other tries on the same sample.

The env-step budget is unchanged: a rollout of ``n`` steps per env holds ``n`` samples seen ``G`` times.
``Monitor`` (inside each copy) still logs the raw rewards and IoU. This module imports SB3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn


class SampleSchedule:
    """A seeded sequence of sample indices, drawn uniformly from ``range(size)`` as far as it is read.

    >>> schedule = SampleSchedule(size=10, seed=0)
    >>> [schedule.index(k) for k in range(4)] == [schedule.index(k) for k in range(4)]
    True
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"a sample schedule needs a dataset of at least one sample, got size={size}")
        self.size = size
        self._rng = np.random.default_rng(seed)
        self._indices: list[int] = []

    def index(self, k: int) -> int:
        """The ``k``-th sample index of the sequence."""
        while len(self._indices) <= k:
            self._indices.extend(int(i) for i in self._rng.integers(self.size, size=256))
        return self._indices[k]


class ShareSampleIndex(gym.Wrapper):
    """Reset to the ``k``-th index of a shared :class:`SampleSchedule` at this env's ``k``-th reset.

    Copies of an env stepped in lock-step (one-step episodes) therefore always hold the same sample.
    The wrapped env must accept ``options={"index": i}`` (every env of this package does).
    """

    def __init__(self, env: gym.Env, schedule: SampleSchedule) -> None:
        super().__init__(env)
        self.schedule = schedule
        self.resets = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset to the schedule's next sample (an ``index`` in ``options`` is overridden)."""
        options = {**(options or {}), "index": self.schedule.index(self.resets)}
        self.resets += 1
        return self.env.reset(seed=seed, options=options)


class CenterGroupRewards(VecEnvWrapper):
    """Subtract from each reward the mean reward of its group (consecutive blocks of ``group_size`` envs).

    >>> import numpy as np
    >>> CenterGroupRewards.center(np.array([1.0, 3.0, 10.0, 10.0]), 2).tolist()
    [-1.0, 1.0, 0.0, 0.0]
    """

    def __init__(self, venv: VecEnv, group_size: int) -> None:
        if group_size < 2 or venv.num_envs % group_size:
            raise ValueError(
                f"group_size must be >= 2 and divide the number of envs ({venv.num_envs}), got {group_size}"
            )
        super().__init__(venv)
        self.group_size = group_size

    @staticmethod
    def center(rewards: np.ndarray, group_size: int) -> np.ndarray:
        """Rewards minus their group means."""
        groups = rewards.reshape(-1, group_size)
        return (groups - groups.mean(axis=1, keepdims=True)).reshape(rewards.shape)

    def reset(self) -> Any:
        """Reset every copy (they land on the same sample)."""
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        """Step every copy and centre the rewards within each group."""
        obs, rewards, dones, infos = self.venv.step_wait()
        return obs, self.center(np.asarray(rewards, dtype=np.float32), self.group_size), dones, infos


def make_group_vec_env(make_env: Callable[[], gym.Env], group_size: int = 8, seed: int = 0) -> VecEnv:
    """``group_size`` copies of ``make_env()`` on one shared sample at a time, rewards centred per group.

    Example:
        >>> from segzero_env.wrappers import make_sb3_env
        >>> venv = make_group_vec_env(
        ...     lambda: make_sb3_env("ReasonSegShapes-v0", image_size=64, segmenter="box", query_encoding="hashed",
        ...                          dataset_kwargs={"level": 1, "size": 16}), group_size=4)
        >>> obs = venv.reset()
        >>> bool((obs["image"] == obs["image"][0]).all())  # all four copies see the same sample
        True
        >>> _, rewards, dones, _ = venv.step(np.random.default_rng(0).uniform(-1, 1, (4, 8)))
        >>> abs(float(rewards.sum())) < 1e-5, bool(dones.all())
        (True, True)

    Args:
        make_env: Builds one env (e.g. ``lambda: make_sb3_env(...)``); its ``unwrapped.dataset`` sets the
            range of sample indices.
        group_size: Copies per group (GRPO uses 8).
        seed: Seed of the shared sample sequence.
    """
    first = make_env()
    schedule = SampleSchedule(len(first.unwrapped.dataset), seed)
    envs = [first] + [make_env() for _ in range(group_size - 1)]
    venv = DummyVecEnv([lambda env=env: ShareSampleIndex(env, schedule) for env in envs])
    return CenterGroupRewards(venv, group_size)

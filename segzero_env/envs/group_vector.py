"""A native vector env for GRPO-style group stepping: G replies per image, one segmenter call per image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from segzero_env.envs.episode import make_episode
from segzero_env.envs.reasonseg_env import ReasonSegEnv
from segzero_env.envs.scoring import score_replies


class GroupVectorEnv(VectorEnv):
    """``num_envs`` reasoning-segmentation envs in blocks of ``group_size`` that share one sample.

    Made by ``gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point",
    group_size=G, **env_kwargs)``; every other keyword argument is the single env's
    (:class:`~segzero_env.envs.reasonseg_env.ReasonSegEnv`). ``N`` must be a multiple of ``G``.

    - ``reset(seed=s)`` seeds sub-env ``i`` with ``s + i``; block ``b`` (sub-envs ``b*G`` to
      ``b*G + G - 1``) draws its sample with the RNG of its first sub-env, so a single env reset
      with seed ``s + b*G`` shows the same sample. ``options={"sample_ids": [...]}`` names one
      sample per block; ``options={"sample_id": ...}`` names one for every block.
    - ``step(replies)`` scores all ``N`` replies with ONE ``segment_many`` call: each image is
      encoded once and all of its prompts decode together. Rewards equal the single env's for
      the same sample and reply exactly, since both share the scoring code.
    - Observations are batched: ``{"image": N x S x S x 3 uint8, "query": tuple of N str}``;
      infos are the single env's, batched by Gymnasium's rules (``info["reward_terms"]["mask_iou"]``
      is an array of ``N``).
    - Single turn (``max_turns=1``): every episode is one step, so every sub-env terminates on
      every step. Autoreset follows Gymnasium's next-step mode: a ``step`` after a terminating one
      resets each block (actions ignored, reward 0). GRPO loops simply call ``reset()`` before
      each group of replies.
    - Multi-turn (``max_turns > 1``): each sub-env carries its own refinement state (the members
      of a block share the sample, not the answers); all refinement turns of a step are still
      scored in one segmenter call. Members stop at different turns (a stop answer), but a block
      STAYS TOGETHER: a member that has terminated WAITS (its actions are ignored, reward 0,
      ``terminated=False``, ``info["waiting"]`` True, its last observation repeated) until every
      member of its block has terminated; the step after that resets the whole block (next-step
      autoreset, as above). Learners must drop waiting transitions (``info["waiting"]`` or
      :attr:`waiting`). A GRPO loop calls ``reset()``, then steps until every sub-env has
      terminated once (at most ``max_turns`` steps) and sums each member's rewards.

    Attributes:
        envs: The ``N`` single envs (sharing one dataset and one segmenter).
        group_size: ``G``.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, group_size: int = 1, **env_kwargs: Any) -> None:
        if group_size < 1 or num_envs < 1 or num_envs % group_size != 0:
            raise ValueError(f"num_envs ({num_envs}) must be a positive multiple of group_size ({group_size})")
        env_kwargs.pop("max_episode_steps", None)
        first = ReasonSegEnv(**env_kwargs)
        shared = {"dataset": first.dataset, "segmenter": first.segmenter}
        built = ("dataset", "segmenter", "dataset_kwargs", "segmenter_kwargs")
        rest = {k: v for k, v in env_kwargs.items() if k not in built}
        self.envs = [first] + [ReasonSegEnv(**shared, **rest) for _ in range(num_envs - 1)]
        self.num_envs = num_envs
        self.group_size = group_size
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._needs_reset = np.ones(num_envs, dtype=bool)

    @property
    def multi_turn(self) -> bool:
        """Whether episodes have refinement turns (``max_turns > 1``)."""
        return self.envs[0].multi_turn

    @property
    def waiting(self) -> np.ndarray:
        """Bool per sub-env: it has terminated and waits for the rest of its block (multi-turn)."""
        waiting = self._needs_reset.copy()
        for block in range(self.num_groups):
            members = slice(block * self.group_size, (block + 1) * self.group_size)
            if waiting[members].all():
                waiting[members] = False
        return waiting

    @property
    def num_groups(self) -> int:
        """Number of blocks (distinct samples per step)."""
        return self.num_envs // self.group_size

    @property
    def segmenter(self):  # noqa: ANN201 - the shared Segmenter
        """The segmenter every sub-env shares."""
        return self.envs[0].segmenter

    @property
    def last_pred_masks(self) -> list[np.ndarray | None]:
        """Each sub-env's last predicted mask (original frame)."""
        return [env.last_pred_mask for env in self.envs]

    def _reset_block(self, block: int, sample_id: str | None) -> None:
        lead = self.envs[block * self.group_size]
        options = None if sample_id is None else {"sample_id": sample_id}
        episode = make_episode(
            lead.dataset[lead._sample_index(options)], lead.image_size, lead.max_query_length
        )
        for env in self.envs[block * self.group_size : (block + 1) * self.group_size]:
            env.begin_episode(episode)

    def _block_sample_ids(self, options: Mapping[str, Any] | None) -> list[str | None]:
        options = options or {}
        if "sample_ids" in options:
            ids = [str(s) for s in options["sample_ids"]]
            if len(ids) != self.num_groups:
                raise ValueError(f"options['sample_ids'] has {len(ids)} ids; expected one per group: {self.num_groups}")
            return list(ids)
        if "sample_id" in options:
            return [str(options["sample_id"])] * self.num_groups
        return [None] * self.num_groups

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset every block; sub-env ``i`` is seeded with ``seed + i`` (or ``seed[i]``)."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        for env, env_seed in zip(self.envs, seeds, strict=True):
            env.reset_rng(env_seed)
        for block, sample_id in enumerate(self._block_sample_ids(options)):
            self._reset_block(block, sample_id)
        self._needs_reset[:] = False
        infos: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            assert env.episode is not None
            infos = self._add_info(infos, env.episode_info(env.episode), i)
        return self._observations(), infos

    def _observations(self) -> dict[str, Any]:
        if self.multi_turn:
            singles = [env._observation() for env in self.envs]
            return {
                key: tuple(o[key] for o in singles) if key == "query" else np.stack([o[key] for o in singles])
                for key in singles[0]
            }
        return {
            "image": np.stack([env.episode.image_obs for env in self.envs]),  # type: ignore[union-attr]
            "query": tuple(env.episode.query_obs for env in self.envs),  # type: ignore[union-attr]
        }

    def step(
        self, actions: Sequence[Any]
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Score every reply in one batched segmenter call (sub-envs awaiting autoreset are reset instead)."""
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"step() got {len(actions)} replies for {self.num_envs} sub-envs")
        if any(env.episode is None for env in self.envs):
            raise RuntimeError("step() called before reset(); call envs.reset() first")
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        active = [i for i in range(self.num_envs) if not self._needs_reset[i]]
        waiting = self.waiting
        reset_now = np.zeros(self.num_envs, dtype=bool)
        for block in range(self.num_groups):
            members = range(block * self.group_size, (block + 1) * self.group_size)
            if all(self._needs_reset[i] for i in members):
                self._reset_block(block, None)
                reset_now[list(members)] = True
                for i in members:
                    infos = self._add_info(infos, self.envs[i].episode_info(self.envs[i].episode), i)
        for i in np.flatnonzero(waiting):
            infos = self._add_info(infos, {"waiting": True}, int(i))
        if active:
            episodes = [self.envs[i].episode for i in active]
            states = [self.envs[i].turn_state for i in active] if self.multi_turn else None
            replies = [actions[i] for i in active]
            outcomes = score_replies(
                episodes, replies, self.segmenter, self.envs[0].preset, states, self.envs[0].template.schema
            )
            for i, outcome in zip(active, outcomes, strict=True):
                _, reward, term, trunc, info = self.envs[i].finish_step(outcome)
                rewards[i], terminated[i], truncated[i] = reward, term, trunc
                infos = self._add_info(infos, info, i)
        # Waiting members keep needing a reset until their whole block is reset together.
        self._needs_reset = (self._needs_reset & ~reset_now) | terminated | truncated
        return self._observations(), rewards, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        """Each sub-env's overlay (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        """Release the shared segmenter."""
        self.envs[0].close()

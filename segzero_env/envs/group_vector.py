"""A native vector env for GRPO-style group stepping: G replies per image, one segmenter call per image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from segzero_env.arguments import whole_number
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
    - Autoreset (``autoreset_mode``, Gymnasium's :class:`~gymnasium.vector.AutoresetMode`):

      * ``"SameStep"`` (the default; no reply is ever ignored): a block whose members have all
        terminated is reset inside the same ``step``. That step returns the rewards of the
        replies just scored and the NEW episode's observations; each sub-env that terminated
        on it has its step info under ``info["final_info"]`` and its last observation under
        ``info["final_obs"]``, while the top-level keys are the new episode's reset info
        (Gymnasium's convention). So the obvious loop scores every reply::

            obs, info = envs.reset(seed=0)
            for _ in range(steps):
                obs, rewards, terminated, truncated, info = envs.step(policy(obs, info))
                ious = info["final_info"]["iou"]  # this step's scores

      * ``"NextStep"`` (Gymnasium's default for its own vector envs): a finished block is reset
        by the NEXT ``step``, which IGNORES its replies and returns reward 0 for them. Loops
        that call ``reset()`` before every batch and read the step's top-level info (or the
        sub-envs' state) use it.
      * ``"Disabled"``: nothing resets by itself; stepping a finished block raises. Reset all
        sub-envs, or some blocks with ``options={"reset_mask": mask}`` (a bool array of ``N``
        covering whole blocks).

      In single-turn episodes (``max_turns=1``) every sub-env terminates on every step.
    - Multi-turn (``max_turns > 1``): each sub-env carries its own refinement state (the members
      of a block share the sample, not the answers); all refinement turns of a step are still
      scored in one segmenter call. Members stop at different turns (a stop answer), but a block
      STAYS TOGETHER: a member that has terminated WAITS (its actions are ignored, reward 0,
      ``terminated=False``, ``info["waiting"]`` True, its last observation repeated) until every
      member of its block has terminated; then the block resets as ``autoreset_mode`` says.
      Learners must drop waiting transitions (``info["waiting"]`` or :attr:`waiting`). A GRPO
      loop calls ``reset()``, then steps until every sub-env has terminated once (at most
      ``max_turns`` steps) and sums each member's rewards.

    Attributes:
        envs: The ``N`` single envs (sharing one dataset and one segmenter).
        group_size: ``G``.
        autoreset_mode: The :class:`~gymnasium.vector.AutoresetMode` in use.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int,
        group_size: int = 1,
        autoreset_mode: str | AutoresetMode = AutoresetMode.SAME_STEP,
        **env_kwargs: Any,
    ) -> None:
        num_envs = whole_number("num_envs", num_envs, minimum=1)
        group_size = whole_number("group_size", group_size, minimum=1)
        if num_envs % group_size != 0:
            raise ValueError(f"num_envs ({num_envs}) must be a positive multiple of group_size ({group_size})")
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            modes = ", ".join(repr(m.value) for m in AutoresetMode)
            raise ValueError(
                f"autoreset_mode must be one of {modes} (or a gymnasium.vector.AutoresetMode), got {autoreset_mode!r}"
            ) from None
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
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
        self._last_pred_masks: list[np.ndarray | None] = [None] * num_envs

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
        """Each sub-env's predicted mask of the last step (original frame), kept across a same-step autoreset."""
        return list(self._last_pred_masks)

    def _reset_block(self, block: int, sample_id: str | None) -> None:
        lead = self.envs[block * self.group_size]
        options = None if sample_id is None else {"sample_id": sample_id}
        episode = make_episode(lead.dataset[lead._sample_index(options)], lead.image_size, lead.max_query_length)
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

    def _reset_mask(self, mask: Any) -> np.ndarray:
        """``options["reset_mask"]`` as a bool array of ``N`` that covers whole blocks (all sub-envs if ``None``)."""
        if mask is None:
            return np.ones(self.num_envs, dtype=bool)
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), got {mask!r}")
        blocks = mask.reshape(self.num_groups, self.group_size)
        if (blocks.any(axis=1) != blocks.all(axis=1)).any():
            raise ValueError(
                f"options['reset_mask'] must reset whole blocks of group_size={self.group_size} sub-envs "
                f"(members share one sample), got {mask.astype(int).tolist()}"
            )
        return mask

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset every block (or the blocks in ``options["reset_mask"]``); sub-env ``i`` is seeded with ``seed + i``."""
        options = dict(options or {})
        mask = self._reset_mask(options.pop("reset_mask", None))
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        for i in np.flatnonzero(mask):
            self.envs[i].reset_rng(seeds[i])
        for block, sample_id in enumerate(self._block_sample_ids(options)):
            if mask[block * self.group_size]:
                self._reset_block(block, sample_id)
        self._needs_reset[mask] = False
        infos: dict[str, Any] = {}
        for i in np.flatnonzero(mask):
            env = self.envs[i]
            assert env.episode is not None
            self._last_pred_masks[i] = None
            infos = self._add_info(infos, env.episode_info(env.episode), int(i))
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

    def _finished_blocks(self) -> list[int]:
        """Blocks whose members have all terminated (they await a reset)."""
        g = self.group_size
        return [b for b in range(self.num_groups) if self._needs_reset[b * g : (b + 1) * g].all()]

    def _members(self, block: int) -> range:
        return range(block * self.group_size, (block + 1) * self.group_size)

    def step(self, actions: Sequence[Any]) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Score every reply in one batched segmenter call; finished blocks reset as ``autoreset_mode`` says."""
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"step() got {len(actions)} replies for {self.num_envs} sub-envs")
        if any(env.episode is None for env in self.envs):
            raise RuntimeError("step() called before reset(); call envs.reset() first")
        finished = self._finished_blocks()
        if finished and self.autoreset_mode == AutoresetMode.DISABLED:
            stale = [i for b in finished for i in self._members(b)]
            raise RuntimeError(
                f"step() on finished sub-envs {stale} with autoreset_mode='Disabled': call envs.reset() "
                "(or reset(options={'reset_mask': mask}) for those blocks) first"
            )
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        step_infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        active = [i for i in range(self.num_envs) if not self._needs_reset[i]]
        waiting = self.waiting
        reset_now = np.zeros(self.num_envs, dtype=bool)
        for block in finished:  # NextStep: this step resets them and ignores their replies
            self._reset_block(block, None)
            for i in self._members(block):
                reset_now[i] = True
                step_infos[i] = self.envs[i].episode_info(self.envs[i].episode)
                self._last_pred_masks[i] = None
        for i in np.flatnonzero(waiting):
            step_infos[i] = {"waiting": True}
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
                step_infos[i] = info
                self._last_pred_masks[i] = self.envs[i].last_pred_mask
        # Waiting members keep needing a reset until their whole block is reset together.
        self._needs_reset = (self._needs_reset & ~reset_now) | terminated | truncated
        infos: dict[str, Any] = {}
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            for i in np.flatnonzero(terminated | truncated):
                final = {"final_obs": self._single_observation(int(i)), "final_info": step_infos[i]}
                infos = self._add_info(infos, final, int(i))
            for block in self._finished_blocks():
                self._reset_block(block, None)
                for i in self._members(block):
                    info = self.envs[i].episode_info(self.envs[i].episode)
                    step_infos[i] = {**info, "waiting": True} if waiting[i] else info
                    self._needs_reset[i] = False
        for i, info in enumerate(step_infos):
            infos = self._add_info(infos, info, i)
        return self._observations(), rewards, terminated, truncated, infos

    def _single_observation(self, i: int) -> dict[str, Any]:
        """Sub-env ``i``'s observation as the single env returns it."""
        return self.envs[i]._observation()

    def render(self) -> tuple[np.ndarray, ...] | None:
        """Each sub-env's overlay (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        """Release the shared segmenter."""
        self.envs[0].close()

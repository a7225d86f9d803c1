"""``ContinuousClickAction``: the box action plus one refinement click per turn, for multi-turn episodes."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from segzero_env.answers import format_refinement
from segzero_env.wrappers.box_action import ACTION_LAYOUT, ContinuousBoxAction

CLICK_COMPONENTS = ("click_x", "click_y", "click_sign")
"""The components appended after the box action's layout."""

CLICK_ACTION_LAYOUT = (*ACTION_LAYOUT, *CLICK_COMPONENTS)
"""Meaning of each action component, in order, with the default box layout."""


class ContinuousClickAction(ContinuousBoxAction):
    """``Box(-1, 1, (11,), float32)``: a box and two points, then a click and its sign.

    For envs made with ``max_turns > 1``. Layout: the 8 components of
    :class:`ContinuousBoxAction`'s layout (its ``box_format``), then ``click_x, click_y,
    click_sign`` (see :data:`CLICK_ACTION_LAYOUT`; ``self.layout`` holds the names). On the first turn
    of an episode the first 8 components are the answer, exactly as in
    :class:`ContinuousBoxAction`, and the click is ignored. On every later turn only the click is
    used: ``click_x`` / ``click_y`` map to the whole ``S x S`` frame like the box corners
    (``(a + 1) / 2 * (S - 1)``), and ``click_sign >= 0`` makes it a positive click (add this region),
    ``< 0`` a negative one (remove it); the reply is a refinement answer
    ``{"positive_points": [[x, y]]}`` or ``{"negative_points": [[x, y]]}``. Episodes run until
    ``max_turns`` (this action has no stop).

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> import segzero_env
        >>> from segzero_env.wrappers.click_action import ContinuousClickAction
        >>> env = ContinuousClickAction(gym.make("ReasonSegShapes-v0", image_size=64, segmenter="box", max_turns=2))
        >>> _ = env.reset(seed=0)
        >>> a = np.array([-1, -1, 0, 0, 0, 0, 1, 1, 1, -1, -0.5], dtype=np.float32)
        >>> _, _, terminated, _, info = env.step(a)
        >>> terminated, info["reply"].count("bbox")
        (False, 1)
        >>> _, _, terminated, _, info = env.step(a)
        >>> terminated, info["reply"].split("<answer>")[1]
        (True, '{"negative_points": [[63, 0]]}</answer>')

    Args:
        env: A multi-turn env (``max_turns > 1``) whose action is a reply string.
        **kwargs: :class:`ContinuousBoxAction`'s arguments (``schema``, ``points_frame``, ...).
    """

    action_size = len(CLICK_ACTION_LAYOUT)

    def __init__(self, env: gym.Env, **kwargs: Any) -> None:
        if getattr(env.unwrapped, "max_turns", 1) < 2:
            raise ValueError("ContinuousClickAction needs a multi-turn env; make it with max_turns >= 2")
        super().__init__(env, **kwargs)
        self.layout = (*self.layout, *CLICK_COMPONENTS)
        self.turn = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env; the next action is a first answer."""
        obs, info = super().reset(seed=seed, options=options)
        self.turn = int(info.get("turn", 0))
        return obs, info

    def step(self, action: np.ndarray) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Write this turn's reply (answer or click), step the env, and track the turn."""
        obs, reward, terminated, truncated, info = super().step(action)
        self.turn = int(info.get("turn", self.turn + 1))
        return obs, reward, terminated, truncated, info

    def action(self, action: np.ndarray) -> str:
        """The first answer on turn 0, else the click's refinement reply."""
        if self.turn == 0:
            return super().action(action)
        self.decode(action)  # validates size and finiteness
        values = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        point = (self._to_pixel((values[8] + 1.0) / 2.0), self._to_pixel((values[9] + 1.0) / 2.0))
        if values[10] >= 0:
            reply = format_refinement([point], think=self.think)
        else:
            reply = format_refinement(negative_points=[point], think=self.think)
        self.last_reply = reply
        return reply

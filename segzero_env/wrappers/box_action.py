"""``ContinuousBoxAction``: a ``Box(-1, 1, (8,))`` action turned into a well-formed reply.

Learners that emit vectors (every Stable-Baselines3 algorithm) cannot write text. This wrapper
maps an 8-vector to one answer object (a box and two points) and writes it with the package's
reply writer, so the env's one parser reads it like any language-model reply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from segzero_env.answers import format_reply
from segzero_env.types import Box, ObjectAnswer, Point

ACTION_LAYOUTS: dict[str, tuple[str, ...]] = {
    "center-size": ("center_x", "center_y", "width", "height", "p1_x", "p1_y", "p2_x", "p2_y"),
    "corners": ("x1", "y1", "x2", "y2", "p1_x", "p1_y", "p2_x", "p2_y"),
}
"""Meaning of each action component, in order, for each ``box_format``."""

ACTION_LAYOUT = ACTION_LAYOUTS["center-size"]
"""The default layout."""

POINTS_FRAMES = ("box", "image")


def _round_half_up(value: float) -> float:
    return float(math.floor(value + 0.5))


class ContinuousBoxAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Replace the env's text action with ``Box(-1, 1, (8,), float32)``: a box and two points.

    Each component lies in ``[-1, 1]`` (values outside are clipped) and stands for the fraction
    ``u = (a + 1) / 2`` of the ``S x S`` observation frame of the wrapped env; a fraction ``u`` is
    the pixel ``u * (S - 1)``, so ``-1`` is the first pixel and ``1`` the last. Layouts
    (:data:`ACTION_LAYOUTS`):

    - ``box_format="center-size"`` (default): ``[center_x, center_y, width, height, p1_x, p1_y,
      p2_x, p2_y]``; the box is ``center -+ size / 2`` clipped to the frame. The zero action is a
      centred box half the frame wide, a sensible first guess, and each box has one action.
    - ``box_format="corners"``: ``[x1, y1, x2, y2, ...]`` as the reply writes them; the corners are
      sorted so no box is inverted. The zero action is a one-pixel box in the centre.

    With ``points_frame="box"`` (default) the point coordinates are fractions of the box, so both
    points always lie inside it; with ``points_frame="image"`` they are fractions of the frame.
    ``S`` is read from ``info["image_size"]`` at each reset (the wrapped env's frame, even when a
    resizing wrapper shrinks the image the policy sees).

    Subclasses extend the layout (for example with refinement clicks) by overriding
    :meth:`decode` and :attr:`action_size`; :meth:`action` stays ``decode`` then :meth:`write`.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> import segzero_env
        >>> from segzero_env.wrappers import ContinuousBoxAction
        >>> env = ContinuousBoxAction(gym.make("ReasonSegShapes-v0", image_size=64, segmenter="box"))
        >>> env.action_space
        Box(-1.0, 1.0, (8,), float32)
        >>> _ = env.reset(seed=0)
        >>> whole_frame = np.array([0, 0, 1, 1, -0.5, -0.5, 0.5, 0.5], dtype=np.float32)
        >>> answer = env.decode(whole_frame)
        >>> answer.box, answer.points
        ((0.0, 0.0, 63.0, 63.0), ((16.0, 16.0), (47.0, 47.0)))
        >>> _, reward, terminated, _, info = env.step(whole_frame)
        >>> terminated, info["parse_failure"]
        (True, None)

    Args:
        env: Env whose action is a reply string and whose reset info holds ``image_size``.
        schema: Answer grammar the replies are written in (``"seg-zero"`` or ``"vision-reasoner"``).
        box_format: ``"center-size"`` or ``"corners"`` (see above).
        points_frame: ``"box"`` (points relative to the box) or ``"image"`` (points in the frame).
        integer_coords: Round coordinates half up to whole pixels, as a language model writes them.
        think: Text of the ``<think>`` block of every reply.
    """

    action_size = len(ACTION_LAYOUT)

    def __init__(
        self,
        env: gym.Env,
        schema: str = "seg-zero",
        box_format: str = "center-size",
        points_frame: str = "box",
        integer_coords: bool = True,
        think: str = "A box and two points from a continuous action.",
    ) -> None:
        if box_format not in ACTION_LAYOUTS:
            raise ValueError(f"box_format must be one of {tuple(ACTION_LAYOUTS)}, got {box_format!r}")
        if points_frame not in POINTS_FRAMES:
            raise ValueError(f"points_frame must be one of {POINTS_FRAMES}, got {points_frame!r}")
        gym.utils.RecordConstructorArgs.__init__(
            self,
            schema=schema,
            box_format=box_format,
            points_frame=points_frame,
            integer_coords=integer_coords,
            think=think,
        )
        gym.ActionWrapper.__init__(self, env)
        self.schema = schema
        self.box_format = box_format
        self.layout = ACTION_LAYOUTS[box_format]
        self.points_frame = points_frame
        self.integer_coords = integer_coords
        self.think = think
        self.action_space = spaces.Box(-1.0, 1.0, (self.action_size,), dtype=np.float32)
        self.frame_size = self._initial_frame_size(env)
        self.last_reply: str | None = None

    @staticmethod
    def _initial_frame_size(env: gym.Env) -> int:
        size = getattr(env.unwrapped, "image_size", None)
        if size is not None:
            return int(size)
        observation_space = env.observation_space
        image_space = observation_space.spaces.get("image") if isinstance(observation_space, spaces.Dict) else None
        if image_space is None or image_space.shape is None:
            raise ValueError(
                "ContinuousBoxAction needs the frame size: the wrapped env has no image_size attribute and no "
                "'image' observation key; wrap the reasoning-segmentation env directly"
            )
        return int(image_space.shape[1])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env and read the frame size ``S`` from ``info["image_size"]``."""
        obs, info = self.env.reset(seed=seed, options=options)
        if info.get("image_size") is not None:
            self.frame_size = int(info["image_size"])
        return obs, info

    def step(self, action: np.ndarray) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Write the reply for ``action``, step the env with it, and add ``info["reply"]``."""
        reply = self.action(action)
        obs, reward, terminated, truncated, info = self.env.step(reply)
        return obs, reward, terminated, truncated, {**info, "reply": reply}

    def action(self, action: np.ndarray) -> str:
        """Return the reply string for ``action``."""
        reply = self.write(self.decode(action))
        self.last_reply = reply
        return reply

    def _to_pixel(self, unit: float) -> float:
        pixel = unit * (self.frame_size - 1)
        return _round_half_up(pixel) if self.integer_coords else float(pixel)

    def decode(self, action: np.ndarray) -> ObjectAnswer:
        """Return the answer object an action stands for, in the ``S x S`` frame.

        Raises:
            ValueError: ``action`` does not hold :attr:`action_size` numbers or holds NaN.
        """
        values = np.asarray(action, dtype=np.float64).reshape(-1)
        if values.shape[0] != self.action_size:
            raise ValueError(f"action must hold {self.action_size} numbers {self.layout}, got shape {np.shape(action)}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"action holds NaN or infinite values: {values.tolist()}; clip or fix the policy output")
        # Subclasses append components after the box and points; those are theirs to read.
        unit = (np.clip(values[: len(ACTION_LAYOUT)], -1.0, 1.0) + 1.0) / 2.0
        if self.box_format == "center-size":
            x_lo, x_hi = max(unit[0] - unit[2] / 2, 0.0), min(unit[0] + unit[2] / 2, 1.0)
            y_lo, y_hi = max(unit[1] - unit[3] / 2, 0.0), min(unit[1] + unit[3] / 2, 1.0)
        else:
            x_lo, x_hi = sorted((unit[0], unit[2]))
            y_lo, y_hi = sorted((unit[1], unit[3]))
        box: Box = (self._to_pixel(x_lo), self._to_pixel(y_lo), self._to_pixel(x_hi), self._to_pixel(y_hi))
        if self.points_frame == "box":
            fractions = unit[4:8].reshape(2, 2)
            points = tuple(
                (self._to_pixel(x_lo + fx * (x_hi - x_lo)), self._to_pixel(y_lo + fy * (y_hi - y_lo)))
                for fx, fy in fractions
            )
        else:
            points = tuple((self._to_pixel(ux), self._to_pixel(uy)) for ux, uy in unit[4:8].reshape(2, 2))
        return ObjectAnswer(box=box, points=points)

    def write(self, answer: ObjectAnswer) -> str:
        """Return the reply text for one answer object, in :attr:`schema`."""
        return format_reply([answer], schema=self.schema, think=self.think)

    def encode_answer(self, box: Sequence[float], points: Sequence[Point] = ()) -> np.ndarray:
        """Return the action that decodes to ``box`` and ``points`` (``S``-frame pixels), inverting :meth:`decode`.

        Used to replay scripted answers (the oracle) through the same action path as a learner.
        With fewer than two points the box centre stands in for the missing ones.

        >>> import gymnasium as gym, segzero_env
        >>> env = ContinuousBoxAction(gym.make("ReasonSegShapes-v0", image_size=64, segmenter="box"))
        >>> env.decode(env.encode_answer((10, 20, 40, 50), [(20, 30), (30, 40)])).box
        (10.0, 20.0, 40.0, 50.0)
        """
        scale = float(self.frame_size - 1)
        x1, y1, x2, y2 = (float(v) for v in box)
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        pts = [tuple(float(c) for c in p) for p in points][:2]
        while len(pts) < 2:
            pts.append(((x1 + x2) / 2, (y1 + y2) / 2))
        if self.points_frame == "box":
            point_units = [
                ((px - x1) / (x2 - x1) if x2 > x1 else 0.5, (py - y1) / (y2 - y1) if y2 > y1 else 0.5) for px, py in pts
            ]
        else:
            point_units = [(px / scale, py / scale) for px, py in pts]
        if self.box_format == "center-size":
            box_units = [(x1 + x2) / 2 / scale, (y1 + y2) / 2 / scale, (x2 - x1) / scale, (y2 - y1) / scale]
        else:
            box_units = [x1 / scale, y1 / scale, x2 / scale, y2 / scale]
        units = [*box_units, *(c for p in point_units for c in p)]
        return np.clip(np.asarray(units, dtype=np.float32) * 2.0 - 1.0, -1.0, 1.0)

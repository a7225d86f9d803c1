"""``ResizeImage``: shrink image keys of a dict observation for small CNN policies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from segzero_env.arguments import whole_number
from segzero_env.envs.episode import MAX_IMAGE_SIZE


class ResizeImage(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Resize ``H x W x C`` (or ``H x W``) uint8 observation keys to ``size x size``.

    Colour images use area filtering (shrinking averages pixels, so thin shapes do not vanish);
    2-D keys such as masks use nearest-neighbour so they stay binary. The aspect ratio is not kept,
    matching how the env builds its square frame. Answers are still written in the wrapped env's
    frame: this changes what the policy sees, not the action's coordinates.

    Example:
        >>> import gymnasium as gym
        >>> import segzero_env
        >>> from segzero_env.wrappers import ResizeImage
        >>> env = ResizeImage(gym.make("ReasonSegShapes-v0", image_size=128, segmenter="box"), size=48)
        >>> env.observation_space["image"]
        Box(0, 255, (48, 48, 3), uint8)
        >>> obs, _ = env.reset(seed=0)
        >>> obs["image"].shape, obs["image"].dtype
        ((48, 48, 3), dtype('uint8'))

    Args:
        env: Env with a ``Dict`` observation.
        size: Side of the resized square (1 to ``MAX_IMAGE_SIZE``, 4096).
        keys: Observation keys to resize; each must be a uint8 ``Box`` of rank 2 or 3.
    """

    def __init__(self, env: gym.Env, size: int = 64, keys: Sequence[str] = ("image",)) -> None:
        size = whole_number("size", size, minimum=1, maximum=MAX_IMAGE_SIZE)
        if not isinstance(env.observation_space, spaces.Dict):
            raise ValueError(f"ResizeImage needs a Dict observation, got {env.observation_space}")
        new_spaces = dict(env.observation_space.spaces)
        for key in keys:
            space = new_spaces.get(key)
            if not isinstance(space, spaces.Box) or space.dtype != np.uint8 or len(space.shape) not in (2, 3):
                raise ValueError(f"observation key {key!r} must be a uint8 Box of shape H x W [x C], got {space}")
            new_shape = (size, size, *space.shape[2:])
            new_spaces[key] = spaces.Box(0, 255, new_shape, dtype=np.uint8)
        gym.utils.RecordConstructorArgs.__init__(self, size=size, keys=tuple(keys))
        gym.ObservationWrapper.__init__(self, env)
        self.size = size
        self.keys = tuple(keys)
        self.observation_space = spaces.Dict(new_spaces)

    def resize(self, image: np.ndarray) -> np.ndarray:
        """One array resized to ``size x size`` (channels kept)."""
        if image.shape[:2] == (self.size, self.size):
            return np.ascontiguousarray(image, dtype=np.uint8)
        shrinking = self.size * self.size < image.shape[0] * image.shape[1]
        interpolation = cv2.INTER_NEAREST if image.ndim == 2 else cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        source = np.ascontiguousarray(image, dtype=np.uint8)
        resized = cv2.resize(source, (self.size, self.size), interpolation=interpolation)
        # cv2 drops a trailing channel axis of size 1; put it back so the shape matches the space.
        return resized.reshape(self.size, self.size, *image.shape[2:])

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Resize every configured key."""
        return {**observation, **{key: self.resize(observation[key]) for key in self.keys}}

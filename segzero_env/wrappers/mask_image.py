"""``MaskToImage``: a 0/1 mask observation turned into a one-channel image for CNN policies."""

from __future__ import annotations

from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from segzero_env.arguments import whole_number
from segzero_env.envs.episode import MAX_IMAGE_SIZE


class MaskToImage(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace an ``S x S`` 0/1 uint8 mask key with ``Box(0, 255, (R, R, 1), uint8)`` (0 or 255).

    Stable-Baselines3 reads a 3-D uint8 ``Box`` spanning 0..255 as an image and gives it its own
    CNN; a 2-D 0/1 array it would flatten into a long vector. Resizing is nearest-neighbour, so the
    mask stays binary.

    Example:
        >>> import gymnasium as gym
        >>> import segzero_env
        >>> from segzero_env.wrappers import MaskToImage
        >>> env = MaskToImage(gym.make("ReasonSegShapes-v0", image_size=64, segmenter="box", max_turns=2), size=48)
        >>> env.observation_space["prev_mask"]
        Box(0, 255, (48, 48, 1), uint8)
        >>> obs, _ = env.reset(seed=0)
        >>> obs["prev_mask"].shape, int(obs["prev_mask"].max())
        ((48, 48, 1), 0)

    Args:
        env: Env with a ``Dict`` observation holding ``key`` as a 2-D uint8 ``Box``.
        size: Side ``R`` of the image (``None``: keep the mask's size).
        key: The mask key.
    """

    def __init__(self, env: gym.Env, size: int | None = None, key: str = "prev_mask") -> None:
        space = env.observation_space.spaces.get(key) if isinstance(env.observation_space, spaces.Dict) else None
        if not isinstance(space, spaces.Box) or space.dtype != np.uint8 or len(space.shape) != 2:
            raise ValueError(f"MaskToImage needs a Dict observation whose {key!r} is a 2-D uint8 Box, got {space}")
        if size is not None:
            size = whole_number("size", size, minimum=1, maximum=MAX_IMAGE_SIZE)
        gym.utils.RecordConstructorArgs.__init__(self, size=size, key=key)
        gym.ObservationWrapper.__init__(self, env)
        self.key = key
        self.size = int(size) if size is not None else int(space.shape[0])
        self.observation_space = spaces.Dict(
            {**env.observation_space.spaces, key: spaces.Box(0, 255, (self.size, self.size, 1), dtype=np.uint8)}
        )

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Scale the mask to 0/255, resize it and add the channel axis."""
        mask = (np.asarray(observation[self.key]) > 0).astype(np.uint8) * 255
        if mask.shape != (self.size, self.size):
            mask = cv2.resize(mask, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        return {**observation, self.key: mask[:, :, None]}

"""``random``: well-formed replies with a random box and random points inside it (a floor)."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from segzero_env.policies.base import PolicyBase, frame_size
from segzero_env.policies.replies import write_reply


class RandomPolicy(PolicyBase):
    """Answer every observation with a uniformly random box and two random points inside it.

    The draw for a sample depends only on ``seed`` and the sample id (``info["sample_id"]``), never
    on the order samples arrive in, so a resumed evaluation gives the same replies as an
    uninterrupted one.

    Args:
        seed: Base seed; ``reset(seed)`` replaces it.
        min_size: Smallest box side in pixels of the ``S x S`` frame.
        schema: Answer grammar to write (``"seg-zero"`` or ``"vision-reasoner"``).
    """

    name = "random"

    def __init__(self, seed: int = 0, min_size: int = 2, schema: str = "seg-zero") -> None:
        if min_size < 1:
            raise ValueError(f"min_size must be >= 1 pixel, got {min_size}")
        self.seed = int(seed)
        self.min_size = int(min_size)
        self.schema = schema
        self._calls = 0

    def reset(self, seed: int | None = None) -> None:
        """Replace the base seed (``None`` keeps the current one)."""
        if seed is not None:
            self.seed = int(seed)

    def _rng(self, info: dict[str, Any]) -> np.random.Generator:
        sample_id = info.get("sample_id")
        if sample_id is None:
            # No id to key on: fall back to call order (still seeded, but order-dependent).
            self._calls += 1
            return np.random.default_rng([self.seed, self._calls])
        return np.random.default_rng([self.seed, zlib.crc32(str(sample_id).encode("utf-8"))])

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        """Draw a box with sides >= ``min_size`` inside the frame and two points inside the box."""
        size = frame_size(observation, info)
        rng = self._rng(info)
        side = min(self.min_size, size)
        x1, y1 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
        x2 = int(rng.integers(x1 + side - 1, size))
        y2 = int(rng.integers(y1 + side - 1, size))
        points = [(int(rng.integers(x1, x2 + 1)), int(rng.integers(y1, y2 + 1))) for _ in range(2)]
        return write_reply((x1, y1, x2, y2), points, schema=self.schema, think="A random guess.")

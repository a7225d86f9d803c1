"""``full-image``: the whole frame as the box, points at its thirds (a floor)."""

from __future__ import annotations

from typing import Any

from segzero_env.policies.base import PolicyBase, frame_size
from segzero_env.policies.replies import write_reply


class FullImagePolicy(PolicyBase):
    """Answer every observation with box ``[0, 0, S-1, S-1]`` and points at ``(S/3, S/3)``, ``(2S/3, 2S/3)``.

    Args:
        schema: Answer grammar to write (``"seg-zero"`` or ``"vision-reasoner"``).
    """

    name = "full-image"

    def __init__(self, schema: str = "seg-zero") -> None:
        self.schema = schema

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        """Return the full-frame reply for this frame size."""
        size = frame_size(observation, info)
        points = [(size // 3, size // 3), (2 * size // 3, 2 * size // 3)]
        return write_reply((0, 0, size - 1, size - 1), points, schema=self.schema, think="The whole image.")

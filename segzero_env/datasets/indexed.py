"""The id index the file and table loaders share: ``len``, ``sample_ids`` and ``index_of``."""

from __future__ import annotations

from collections.abc import Sequence

from segzero_env.datasets.errors import key_error


class IndexedDataset:
    """Base for loaders that list their sample ids once, while indexing.

    A subclass sets ``name`` and ``split`` and calls :meth:`_set_ids` when its index is final
    (after any ``verify`` pass); ids are kept in index order.

    >>> class Two(IndexedDataset):
    ...     name, split = "two", "val"
    >>> ds = Two()
    >>> ds._set_ids(["a", "b"])
    >>> len(ds), ds.sample_ids, ds.index_of("b")
    (2, ['a', 'b'], 1)
    >>> ds.index_of("c")
    Traceback (most recent call last):
    ...
    KeyError: "sample id 'c' is not in two val"
    """

    name: str
    split: str
    _ids: list[str]
    _positions: dict[str, int]

    def _set_ids(self, ids: Sequence[str]) -> None:
        """Record the final sample ids, in index order."""
        self._ids = list(ids)
        self._positions = {sample_id: i for i, sample_id in enumerate(self._ids)}

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def sample_ids(self) -> list[str]:
        """Every sample id, in index order."""
        return list(self._ids)

    def index_of(self, sample_id: str) -> int:
        """Index of ``sample_id``; raises ``KeyError`` naming the id and the dataset when absent."""
        try:
            return self._positions[sample_id]
        except KeyError:
            raise key_error(sample_id, f"{self.name} {self.split}") from None

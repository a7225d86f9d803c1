"""The dataset protocol shared by every source, and the name registry behind ``load``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from segzero_env.trust import resolve
from segzero_env.types import Sample


@runtime_checkable
class SegDataset(Protocol):
    """A lazily decoded sequence of :class:`~segzero_env.types.Sample`.

    ``ds[i]`` decodes sample ``i`` on access; ``sample_ids`` is known without decoding anything.
    """

    name: str
    split: str
    has_masks: bool

    def __len__(self) -> int:
        """Number of samples."""
        ...

    def __getitem__(self, index: int) -> Sample:
        """Decode and return sample ``index``."""
        ...

    @property
    def sample_ids(self) -> Sequence[str]:
        """Every sample id, in index order."""
        ...

    def index_of(self, sample_id: str) -> int:
        """Index of ``sample_id``; raises ``KeyError`` naming the id when absent."""
        ...


DatasetFactory = Callable[..., SegDataset]
_REGISTRY: dict[str, str | DatasetFactory] = {}


def register_dataset(name: str, factory: str | DatasetFactory) -> None:
    """Register a dataset under ``name``; ``factory`` may be a ``"module:callable"`` string (loaded lazily)."""
    _REGISTRY[name] = factory


def dataset_names() -> list[str]:
    """Names accepted by :func:`load`."""
    return sorted(_REGISTRY)


def load(name: str | DatasetFactory, root: str | None = None, split: str = "val", **kwargs: Any) -> SegDataset:
    """Load dataset ``name`` (``"shapes"``, ``"reasonseg"``, ...) or call a factory.

    Args:
        name: Registered name, a factory callable, or a ``"module:callable"`` string, which runs
            code and is loaded only when code is allowed (:mod:`segzero_env.trust`).
        root: Folder holding the data (ignored by the synthetic set).
        split: Split name.
        **kwargs: Passed to the source's loader.

    Raises:
        CodeNotAllowedError: ``name`` is an unregistered ``"module:callable"`` and code is not allowed.
        ValueError: ``name`` is unknown or cannot be imported.
    """
    factory = name if callable(name) else resolve("dataset", name, _REGISTRY)
    return factory(root=root, split=split, **kwargs)

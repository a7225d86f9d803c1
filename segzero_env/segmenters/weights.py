"""Which SAM2 network to build and where its checkpoint comes from.

Resolution order for :func:`resolve_checkpoint` (the first that applies wins):

1. ``checkpoint=`` given explicitly: that file (an error right away if it does not exist; an
   explicit path never falls through to other sources).
2. ``$SEGZERO_SAM2_CHECKPOINT``: that file, for whatever model size is asked (an error right
   away if set but missing). Use the folder routes below to keep several sizes.
3. A folder holding the official file names (``sam2.1_hiera_large.pt``, ``sam2_hiera_tiny.pt``,
   ...): ``$SEGZERO_SAM2_DIR`` when set, then the default cache folder
   ``$XDG_CACHE_HOME/segzero_env/sam2`` (``~/.cache/segzero_env/sam2``).
4. The Hugging Face hub id (``facebook/sam2.1-hiera-large`` ...): its local hub cache first,
   then a download, unless ``allow_hub=False`` or the hub cannot be used (``HF_HUB_OFFLINE`` set,
   or one short probe by :mod:`segzero_env.hub` failed: then the error comes in seconds, not
   after the hub client's retries). Network failures are caught and reported.

If none works, :class:`WeightsNotFoundError` lists every place tried and how to fix it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from segzero_env.hub import hub_endpoint, hub_unavailable_reason

CHECKPOINT_ENV = "SEGZERO_SAM2_CHECKPOINT"
"""Environment variable naming one checkpoint file."""
DIR_ENV = "SEGZERO_SAM2_DIR"
"""Environment variable naming a folder of checkpoints under their official file names."""

_SIZES = {
    "tiny": ("t", "tiny", "tiny"),
    "small": ("s", "small", "small"),
    "base_plus": ("b+", "base_plus", "base-plus"),
    "large": ("l", "large", "large"),
}
"""size -> (config suffix, checkpoint file suffix, hub id suffix)."""
_ALIASES = {
    "tiny": "tiny", "t": "tiny",
    "small": "small", "s": "small",
    "base+": "base_plus", "b+": "base_plus", "base_plus": "base_plus", "base-plus": "base_plus",
    "large": "large", "l": "large",
}  # fmt: skip
_VERSIONS = ("2.1", "2.0")
_RELEASE_URLS = {
    "2.1": "https://dl.fbaipublicfiles.com/segment_anything_2/092824/",
    "2.0": "https://dl.fbaipublicfiles.com/segment_anything_2/072824/",
}


class WeightsNotFoundError(FileNotFoundError):
    """No SAM2 checkpoint could be found; the message lists every place tried and what to do.

    Attributes:
        tried: One line per place looked at, with what happened there.
    """

    def __init__(self, message: str, tried: list[str]) -> None:
        super().__init__(message)
        self.tried = tried


@dataclass(frozen=True)
class ModelSpec:
    """One SAM2 network: size and release.

    Attributes:
        size: ``"tiny"``, ``"small"``, ``"base_plus"`` or ``"large"``.
        version: ``"2.1"`` or ``"2.0"``.
    """

    size: str
    version: str

    @property
    def config_name(self) -> str:
        """The ``sam2`` package's config name, e.g. ``configs/sam2.1/sam2.1_hiera_t.yaml``."""
        suffix = _SIZES[self.size][0]
        if self.version == "2.1":
            return f"configs/sam2.1/sam2.1_hiera_{suffix}.yaml"
        return f"configs/sam2/sam2_hiera_{suffix}.yaml"

    @property
    def checkpoint_filename(self) -> str:
        """The official checkpoint file name, e.g. ``sam2.1_hiera_large.pt``."""
        prefix = "sam2.1" if self.version == "2.1" else "sam2"
        return f"{prefix}_hiera_{_SIZES[self.size][1]}.pt"

    @property
    def hub_id(self) -> str:
        """The Hugging Face hub id, e.g. ``facebook/sam2.1-hiera-large``."""
        prefix = "sam2.1" if self.version == "2.1" else "sam2"
        return f"facebook/{prefix}-hiera-{_SIZES[self.size][2]}"

    @property
    def download_url(self) -> str:
        """Where the official checkpoint file can be downloaded."""
        return _RELEASE_URLS[self.version] + self.checkpoint_filename


def model_spec(model: str = "large", version: str = "2.1") -> ModelSpec:
    """Normalise a model size (``large``/``l``, ``base+``/``b+``/``base_plus``, ``small``/``s``, ``tiny``/``t``).

    >>> model_spec("b+", "2.0").config_name
    'configs/sam2/sam2_hiera_b+.yaml'

    Raises:
        ValueError: Unknown size or version.
    """
    size = _ALIASES.get(str(model).strip().lower())
    if size is None:
        raise ValueError(f"unknown SAM2 model {model!r}; use one of large, base+, small, tiny (or l, b+, s, t)")
    version = str(version)
    if version not in _VERSIONS:
        raise ValueError(f"unknown SAM2 version {version!r}; use '2.1' or '2.0'")
    return ModelSpec(size=size, version=version)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/segzero_env/sam2``, else ``~/.cache/segzero_env/sam2``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "segzero_env" / "sam2"


@dataclass(frozen=True)
class ResolvedWeights:
    """Where the checkpoint was found.

    Attributes:
        path: Local checkpoint file.
        source: ``"argument"``, ``"env:SEGZERO_SAM2_CHECKPOINT"``, ``"dir:<folder>"``, ``"hub-cache"`` or ``"hub"``.
    """

    path: Path
    source: str


def _hub_lookup(spec: ModelSpec, tried: list[str]) -> Path | None:
    try:
        import huggingface_hub
    except ImportError:
        tried.append(f"hub {spec.hub_id}: huggingface_hub is not installed")
        return None
    cached = huggingface_hub.try_to_load_from_cache(spec.hub_id, spec.checkpoint_filename)
    if isinstance(cached, str) and os.path.isfile(cached):
        return Path(cached)
    tried.append(f"hub cache {spec.hub_id}/{spec.checkpoint_filename}: not in the local hub cache")
    reason = hub_unavailable_reason()  # honours HF_HUB_OFFLINE, else one short probe instead of minutes of retries
    if reason is not None:
        tried.append(f"hub {hub_endpoint()}/{spec.hub_id}: download not tried ({reason})")
        return None
    try:
        return Path(huggingface_hub.hf_hub_download(spec.hub_id, spec.checkpoint_filename, endpoint=hub_endpoint()))
    except Exception as err:  # noqa: BLE001 - any network / hub failure means "not available here"
        tried.append(f"hub {spec.hub_id}: download failed ({type(err).__name__}: {str(err).splitlines()[0][:160]})")
        return None


def resolve_checkpoint(
    spec: ModelSpec, checkpoint: str | os.PathLike | None = None, allow_hub: bool = True
) -> ResolvedWeights:
    """Find the checkpoint file for ``spec`` in the order given in the module docstring.

    Args:
        spec: Which network.
        checkpoint: An explicit checkpoint file.
        allow_hub: Whether the hub may be used (its local cache and a download).

    Raises:
        WeightsNotFoundError: Nothing found; the message lists what was tried and what to do.
    """
    tried: list[str] = []
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if path.is_file():
            return ResolvedWeights(path, "argument")
        tried.append(f"checkpoint={str(checkpoint)!r}: no such file")
        raise _not_found(spec, tried)
    env_file = os.environ.get(CHECKPOINT_ENV)
    if env_file:
        path = Path(env_file).expanduser()
        if path.is_file():
            return ResolvedWeights(path, f"env:{CHECKPOINT_ENV}")
        tried.append(f"${CHECKPOINT_ENV}={env_file!r}: no such file")
        raise _not_found(spec, tried)
    tried.append(f"${CHECKPOINT_ENV}: not set")
    folders = []
    if os.environ.get(DIR_ENV):
        folders.append((Path(os.environ[DIR_ENV]).expanduser(), f"${DIR_ENV}"))
    else:
        tried.append(f"${DIR_ENV}: not set")
    folders.append((default_cache_dir(), "default cache folder"))
    for folder, label in folders:
        path = folder / spec.checkpoint_filename
        if path.is_file():
            return ResolvedWeights(path, f"dir:{folder}")
        tried.append(f"{label} {folder}: no {spec.checkpoint_filename}")
    if not allow_hub:
        tried.append(f"hub {spec.hub_id}: not tried (allow_hub=False)")
    else:
        found = _hub_lookup(spec, tried)
        if found is not None:
            return ResolvedWeights(found, "hub")
    raise _not_found(spec, tried)


def _not_found(spec: ModelSpec, tried: list[str]) -> WeightsNotFoundError:
    places = "\n".join(f"  - {line}" for line in tried)
    message = (
        f"no SAM2 {spec.version} {spec.size} checkpoint found. Tried, in order:\n{places}\n"
        f"To fix, do one of:\n"
        f"  - download {spec.download_url} into {default_cache_dir()} (or into the folder named by ${DIR_ENV});\n"
        f"  - set ${CHECKPOINT_ENV} to the checkpoint file, or pass checkpoint='/path/{spec.checkpoint_filename}';\n"
        f"  - go online (unset HF_HUB_OFFLINE) so the hub id {spec.hub_id} can be downloaded;\n"
        f"  - for tests and CPU benchmarks only, pass random_weights=True (untrained network, meaningless masks)."
    )
    return WeightsNotFoundError(message, tried)

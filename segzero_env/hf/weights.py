"""Where a transformers model (the policy VLM) comes from: a local folder, the hub cache, or the hub.

Resolution order for :func:`resolve_model` (the first that applies wins):

1. ``name_or_path`` is an existing folder: used as is when it holds ``config.json`` and complete
   weights (``model.safetensors``, sharded ``*.index.json`` with every shard, or
   ``pytorch_model.bin``), or a LoRA adapter (``adapter_config.json``; its base model is resolved
   too). A folder without them is an error right away; so is a name that can only be a path
   (``/models/x``, ``./x``, ``~/x``) and does not exist.
2. A hub id (``Qwen/Qwen2.5-VL-3B-Instruct``) already downloaded: its snapshot folder in the local
   hub cache (``$HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``), when complete.
3. The hub itself, when it can be reached (:mod:`segzero_env.hub`: ``HF_HUB_OFFLINE`` honoured,
   else one probe of about 2 s): ``config.json`` is fetched to check the id, and the loader
   downloads the rest. An unreachable hub fails at once instead of after minutes of retries.

If none works, :class:`ModelNotFoundError` lists every place tried and how to fix it. Importing
this module imports neither torch nor transformers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from segzero_env.hub import hub_endpoint, hub_unavailable_reason

TINY_MODEL = "tiny"
"""Model name that builds the offline tiny Qwen2.5-VL (random weights) instead of loading one."""

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_ADAPTER_CONFIG = "adapter_config.json"
_PROCESSOR_FILES = ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer_config.json")


class ModelNotFoundError(FileNotFoundError):
    """No model could be found; the message lists every place tried and what to do.

    Attributes:
        name_or_path: The model asked for.
        tried: One line per place looked at, with what happened there.
    """

    def __init__(self, message: str, name_or_path: str, tried: list[str]) -> None:
        super().__init__(message)
        self.name_or_path = name_or_path
        self.tried = tried


@dataclass(frozen=True)
class ResolvedModel:
    """Where the model was found.

    Attributes:
        name_or_path: What to pass to ``from_pretrained``: a local folder, or the hub id (source ``"hub"``).
        source: ``"local"``, ``"hub-cache"`` or ``"hub"``.
    """

    name_or_path: str
    source: str


def missing_files(folder: Path, weights: bool = True) -> str | None:
    """``None`` if ``folder`` holds a loadable checkpoint (config and every weight file), else what is missing.

    With ``weights=False`` (a processor) any of ``config.json``, ``preprocessor_config.json``,
    ``processor_config.json`` or ``tokenizer_config.json`` is enough.

    >>> missing_files(Path("/nonexistent"))
    'no config.json'
    """
    if not weights:
        if any((folder / name).is_file() for name in _PROCESSOR_FILES):
            return None
        return f"none of {', '.join(_PROCESSOR_FILES)}"
    if (folder / _ADAPTER_CONFIG).is_file():
        return None
    if not (folder / "config.json").is_file():
        return "no config.json"
    if any((folder / name).is_file() for name in _WEIGHT_FILES):
        return None
    for index_name in _INDEX_FILES:
        index = folder / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, AttributeError) as err:
                return f"unreadable {index_name} ({type(err).__name__})"
            absent = [shard for shard in shards if not (folder / shard).is_file()]
            return f"missing {len(absent)} of {len(shards)} weight shards (e.g. {absent[0]})" if absent else None
    return f"config.json but no weights ({', '.join(_WEIGHT_FILES + _INDEX_FILES)})"


def _looks_like_path(name: str) -> bool:
    """A name that cannot be a hub id (``owner/name`` or ``name``)."""
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1 or os.path.isabs(name)


def _hub_id_problem(name: str) -> str | None:
    try:
        from huggingface_hub.utils import validate_repo_id
    except ImportError:
        return "huggingface_hub is not installed (pip install huggingface_hub)"
    try:
        validate_repo_id(name)
    except Exception as err:  # noqa: BLE001 - HFValidationError; its text says what is wrong with the id
        return str(err).splitlines()[0][:160]
    return None


def _cache_lookup(repo_id: str, weights: bool, tried: list[str]) -> Path | None:
    import huggingface_hub
    from huggingface_hub import constants

    for filename in ("config.json",) if weights else _PROCESSOR_FILES:
        cached = huggingface_hub.try_to_load_from_cache(repo_id, filename)
        if isinstance(cached, str):
            break
    else:
        tried.append(f"hub cache {constants.HF_HUB_CACHE}: {repo_id} not downloaded")
        return None
    snapshot = Path(cached).parent
    problem = missing_files(snapshot, weights)
    if problem is None:
        return snapshot
    tried.append(f"hub cache {snapshot}: incomplete download ({problem})")
    return None


def _hub_lookup(repo_id: str, weights: bool, tried: list[str]) -> bool:
    reason = hub_unavailable_reason()
    if reason is not None:
        tried.append(f"hub {hub_endpoint()}: not tried ({reason})")
        return False
    import huggingface_hub

    endpoint = hub_endpoint()  # the address just probed, also when $HF_ENDPOINT changed after import
    try:
        if weights:
            huggingface_hub.hf_hub_download(repo_id, "config.json", endpoint=endpoint)
        elif not huggingface_hub.HfApi(endpoint=endpoint).repo_exists(repo_id):
            tried.append(f"hub {hub_endpoint()}/{repo_id}: no such repository")
            return False
    except Exception as err:  # noqa: BLE001 - unknown id, gated repo, network failure: all "not available here"
        tried.append(f"hub {hub_endpoint()}/{repo_id}: {type(err).__name__}: {str(err).splitlines()[0][:160]}")
        return False
    return True


def resolve_model(name_or_path: str | os.PathLike, *, what: str = "model", weights: bool = True) -> ResolvedModel:
    """Find a transformers model in the order given in the module docstring.

    Args:
        name_or_path: A local folder or a hub id.
        what: What the model is for, used in the error message (``"policy model"``, ``"processor"``).
        weights: Whether weights are needed; ``False`` for a processor (see :func:`missing_files`).

    Raises:
        ModelNotFoundError: Nothing usable found; the message lists what was tried and what to do.
    """
    name = str(name_or_path)
    tried: list[str] = []
    folder = Path(name).expanduser()
    if folder.is_dir():
        problem = missing_files(folder, weights)
        if problem is None:
            adapter = folder / _ADAPTER_CONFIG
            if weights and adapter.is_file() and not (folder / "config.json").is_file():
                _resolve_adapter_base(adapter, what)
            return ResolvedModel(str(folder), "local")
        tried.append(f"local folder {folder.resolve()}: {problem}")
        raise _not_found(name, what, tried)
    tried.append(f"local folder {folder.resolve()}: {'not a folder' if folder.exists() else 'no such folder'}")
    if _looks_like_path(name):
        raise _not_found(name, what, tried)
    problem = _hub_id_problem(name)
    if problem is not None:
        tried.append(f"hub id {name!r}: {problem}")
        raise _not_found(name, what, tried)
    snapshot = _cache_lookup(name, weights, tried)
    if snapshot is not None:
        return ResolvedModel(str(snapshot), "hub-cache")
    if _hub_lookup(name, weights, tried):
        return ResolvedModel(name, "hub")
    raise _not_found(name, what, tried)


def _resolve_adapter_base(adapter_config: Path, what: str) -> None:
    """Check that a LoRA adapter's base model can be found too (its own error otherwise)."""
    try:
        base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return
    if base:
        resolve_model(base, what=f"base model of the adapter in {adapter_config.parent} ({what})")


def _not_found(name: str, what: str, tried: list[str]) -> ModelNotFoundError:
    places = "\n".join(f"  - {line}" for line in tried)
    is_hub_id = not _looks_like_path(name) and name.count("/") == 1
    hub_id = name if is_hub_id else "Qwen/Qwen2.5-VL-3B-Instruct"
    local = f"/models/{hub_id.rsplit('/', 1)[-1]}" if is_hub_id else name
    message = (
        f"{what} {name!r} not found. Tried, in order:\n{places}\n"
        f"To fix, do one of:\n"
        f"  - download it on a machine with internet: hf download {hub_id} --local-dir {local} "
        f"(huggingface_hub's CLI), and use that folder;\n"
        f"  - pass a local folder holding config.json and the weights: --model-name-or-path {local} "
        f"(examples/train_grpo.py), --policy-kwargs model={local} (segzero eval --policy hf);\n"
        f"  - go online (unset HF_HUB_OFFLINE; HF_ENDPOINT for a mirror) so the hub id can be downloaded;\n"
        f"  - for tests and CPU smoke runs only, use the model name {TINY_MODEL!r}: a tiny Qwen2.5-VL built "
        f"offline with random weights (meaningless replies)."
    )
    return ModelNotFoundError(message, name, tried)

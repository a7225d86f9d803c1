"""Which names may run code: registered names always, ``"module:attr"`` strings only when asked for.

Segmenters, policies, datasets and env ids are chosen by name. A registered name (``"sam2"``,
``"oracle"``, ``"reasonseg"``) points at this package's classes, or at classes that your own code
registered. A ``"module:attr"`` string is different: it imports ``module`` and calls ``attr``, so
whoever writes it runs code on this machine (``"os:system"`` with ``{"command": ...}`` runs a
shell command). Such strings are refused unless code is allowed:

- ``--allow-code`` on the ``segzero`` command line;
- ``SEGZERO_ALLOW_CODE=1`` in the environment;
- ``with segzero_env.allow_code(): ...`` in Python;
- or no string at all: pass the class (or an instance) itself, or register it by name first
  (``register_segmenter("mine", "mypkg.seg:MySegmenter")``).

Places that read names from data (verl's ``compute_score`` reads ``extra_info`` from a parquet row)
wrap their work in ``allow_code(False)``, which refuses ``"module:attr"`` strings even when the
environment variable is set.

>>> with allow_code(False):
...     resolve("segmenter", "os:system", {"box": "segzero_env.segmenters.box:BoxSegmenter"})
Traceback (most recent call last):
...
segzero_env.trust.CodeNotAllowedError: segmenter 'os:system' is a 'module:attr' name: it imports and runs code, ...
"""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

ALLOW_CODE_ENV = "SEGZERO_ALLOW_CODE"
"""Environment variable that, set to ``1`` (or ``true``/``yes``), allows ``"module:attr"`` names."""

PACKAGE_PREFIX = "segzero_env"
"""Env ids written ``"segzero_env:Name-v0"`` import this package only, so they are always allowed."""

_OVERRIDE: ContextVar[bool | None] = ContextVar("segzero_allow_code", default=None)


class CodeNotAllowedError(ValueError):
    """A ``"module:attr"`` name came where only registered names are allowed."""


def code_allowed() -> bool:
    """Whether ``"module:attr"`` names may be imported here: :func:`allow_code`, else ``$SEGZERO_ALLOW_CODE``."""
    override = _OVERRIDE.get()
    if override is not None:
        return override
    return os.environ.get(ALLOW_CODE_ENV, "").strip().lower() in ("1", "true", "yes")


@contextmanager
def allow_code(enabled: bool = True) -> Iterator[None]:
    """Allow (or, with ``enabled=False``, refuse) ``"module:attr"`` names inside the ``with`` block.

    The setting belongs to the current thread (a context variable) and wins over the environment
    variable; processes started inside the block (async vector envs) need ``SEGZERO_ALLOW_CODE=1``.
    Wrap code that builds objects from names read out of files in ``allow_code(False)``.
    """
    token = _OVERRIDE.set(bool(enabled))
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


def _shown(spec: str) -> str:
    return repr(spec if len(spec) <= 80 else spec[:77] + "...")


def _refusal(kind: str, spec: str, known: str) -> CodeNotAllowedError:
    return CodeNotAllowedError(
        f"{kind} {_shown(spec)} is a 'module:attr' name: it imports and runs code, which is refused unless you "
        f"ask for it. Use a registered {kind} ({known}), pass the class itself in Python, or allow code with "
        f"--allow-code, {ALLOW_CODE_ENV}=1 or segzero_env.allow_code() (never for names read from data files)"
    )


def resolve(kind: str, spec: str, registry: Mapping[str, str | Callable[..., Any]]) -> Callable[..., Any]:
    """Return what a registered name, or (when code is allowed) a ``"module:attr"`` string, names.

    Registered targets are trusted: only code can register them. Every other ``"module:attr"``
    string needs :func:`code_allowed`.

    Args:
        kind: What is being resolved (``"segmenter"``, ``"policy"``, ``"dataset"``), for messages.
        spec: The name given by the user.
        registry: Registered names to their ``"module:attr"`` strings or callables.

    Raises:
        CodeNotAllowedError: ``spec`` is an unregistered ``"module:attr"`` and code is not allowed.
        ValueError: ``spec`` is unknown, or its module or attribute cannot be found.
    """
    known = ", ".join(sorted(registry))
    if spec in registry:
        target = registry[spec]
        if not isinstance(target, str):
            return target
    elif ":" not in spec:
        raise ValueError(f"unknown {kind} {_shown(spec)}; known: {known} (or 'module:attr' with --allow-code)")
    elif not code_allowed():
        raise _refusal(kind, spec, known)
    else:
        target = spec
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{kind} {_shown(spec)}: cannot import module {module_name!r} ({err})") from err
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise ValueError(f"{kind} {_shown(spec)}: module {module_name!r} has no attribute {attr!r}") from err


def check_env_id(env_id: str) -> str:
    """Return ``env_id`` if making it imports no module other than this package.

    Gymnasium imports ``module`` before making ``"module:Name-v0"``; ids without a module, and
    ``"segzero_env:..."``, need no permission.

    Raises:
        CodeNotAllowedError: The id names another module and code is not allowed.
    """
    module_name, sep, _ = str(env_id).partition(":")
    if sep and module_name != PACKAGE_PREFIX and not code_allowed():
        raise CodeNotAllowedError(
            f"env id {_shown(str(env_id))} imports module {module_name!r}, which runs its code; import it yourself "
            f"and pass the bare id, or allow code with --allow-code, {ALLOW_CODE_ENV}=1 or segzero_env.allow_code()"
        )
    return env_id


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if code_allowed():
            return super().find_class(module, name)
        raise CodeNotAllowedError(
            f"the pickle asks for the Python object {module}.{name}: building it could run code, so only plain "
            f"lists, dicts, strings and numbers are read unless code is allowed ({ALLOW_CODE_ENV}=1)"
        )


def load_plain_pickle(file: IO[bytes]) -> Any:
    """Unpickle ``file`` when it holds only plain values (lists, dicts, strings, numbers).

    A pickle can name any Python callable, which unpickling calls: such a pickle is refused
    unless code is allowed.

    Raises:
        CodeNotAllowedError: The pickle names a Python object and code is not allowed.
    """
    return _PlainUnpickler(file).load()

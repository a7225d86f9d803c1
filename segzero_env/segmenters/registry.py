"""Segmenters by name or ``"module:Class"``."""

from __future__ import annotations

from typing import Any

from segzero_env.segmenters.base import Segmenter
from segzero_env.trust import resolve

_REGISTRY: dict[str, str] = {
    "box": "segzero_env.segmenters.box:BoxSegmenter",
    "grabcut": "segzero_env.segmenters.grabcut:GrabCutSegmenter",
    "sam2": "segzero_env.segmenters.sam2_backend:SAM2Segmenter",
    "hf-sam2": "segzero_env.segmenters.hf_sam2:HFSam2Segmenter",
    "remote": "segzero_env.service.remote_segmenter:RemoteSegmenter",
}


def register_segmenter(name: str, target: str) -> None:
    """Register ``"module:Class"`` under ``name``."""
    _REGISTRY[name] = target


def segmenter_names() -> list[str]:
    """Registered segmenter names."""
    return sorted(_REGISTRY)


def make_segmenter(spec: str | type | Segmenter, **kwargs: Any) -> Segmenter:
    """Build a segmenter from a registered name, a class, or return an instance unchanged.

    A ``"module:Class"`` string runs code and is built only when code is allowed
    (:mod:`segzero_env.trust`). A URL (``"http://host:8000"``) is the ``remote`` segmenter on
    that ``segzero serve`` service.

    Raises:
        CodeNotAllowedError: ``spec`` is an unregistered ``"module:Class"`` and code is not allowed.
        ValueError: ``spec`` is unknown, or kwargs come with an instance.
    """
    if isinstance(spec, type):
        return spec(**kwargs)
    if not isinstance(spec, str):
        if kwargs:
            raise ValueError("segmenter_kwargs given with a segmenter instance; configure the instance instead")
        return spec
    if spec.startswith(("http://", "https://")):
        return resolve("segmenter", "remote", _REGISTRY)(url=spec, **kwargs)
    return resolve("segmenter", spec, _REGISTRY)(**kwargs)

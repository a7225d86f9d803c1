"""Segmenters by name or ``"module:Class"``."""

from __future__ import annotations

import importlib
from typing import Any

from segzero_env.segmenters.base import Segmenter

_REGISTRY: dict[str, str] = {
    "box": "segzero_env.segmenters.box:BoxSegmenter",
    "grabcut": "segzero_env.segmenters.grabcut:GrabCutSegmenter",
    "sam2": "segzero_env.segmenters.sam2_backend:SAM2Segmenter",
    "hf-sam2": "segzero_env.segmenters.hf_sam2:HFSam2Segmenter",
}


def register_segmenter(name: str, target: str) -> None:
    """Register ``"module:Class"`` under ``name``."""
    _REGISTRY[name] = target


def segmenter_names() -> list[str]:
    """Registered segmenter names."""
    return sorted(_REGISTRY)


def make_segmenter(spec: str | Segmenter, **kwargs: Any) -> Segmenter:
    """Build a segmenter from a name, a ``"module:Class"`` string, or return an instance unchanged."""
    if not isinstance(spec, str):
        if kwargs:
            raise ValueError("segmenter_kwargs given with a segmenter instance; configure the instance instead")
        return spec
    target = _REGISTRY.get(spec, spec)
    if ":" not in target:
        raise ValueError(f"unknown segmenter {spec!r}; known: {', '.join(segmenter_names())}, or pass 'module:Class'")
    module_name, attr = target.split(":", 1)
    cls = getattr(importlib.import_module(module_name), attr)
    return cls(**kwargs)

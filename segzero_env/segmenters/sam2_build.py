"""Building a SAM2 network from the ``sam2`` package's configs, trained or explicitly untrained.

Imports torch and sam2 inside the functions so that importing this module stays light.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from segzero_env.segmenters.weights import ModelSpec, resolve_checkpoint

logger = logging.getLogger(__name__)

POSTPROCESSING_OVERRIDES = {
    "model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability": True,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta": 0.05,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh": 0.98,
}
"""What ``build_sam2`` sets by default (single-mask output falls back to the most stable multimask);
repeated for the Hydra-free build path so both paths build the same network."""


def _build_from_yaml(config_name: str) -> Any:
    """Build from the config file directly, for hosts whose own Hydra setup hides sam2's configs."""
    import sam2
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(sam2.__file__).parent / config_name)
    for key, value in POSTPROCESSING_OVERRIDES.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    OmegaConf.resolve(cfg)
    return instantiate(cfg.model, _recursive_=True).eval()


def build_untrained(config_name: str) -> Any:
    """Build the network of ``config_name`` with random weights, on the CPU, in eval mode.

    Uses ``sam2.build_sam.build_sam2``; if the host process initialised Hydra itself (so sam2's
    config names do not resolve), builds the same network from the config file instead.
    """
    from hydra.errors import MissingConfigException
    from sam2.build_sam import build_sam2

    try:
        return build_sam2(config_name, None, device="cpu", mode="eval")
    except (MissingConfigException, ValueError) as err:
        logger.info("sam2 config %s not resolvable through Hydra (%s); building from the file", config_name, err)
        return _build_from_yaml(config_name)


def load_checkpoint(model: Any, path: str | os.PathLike, spec: ModelSpec) -> None:
    """Load a ``{"model": state_dict}`` (or bare state dict) checkpoint into ``model``, strictly.

    Raises:
        ValueError: The file's keys do not fit the network (wrong size or version).
    """
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    hint = f"Check that model= and version= match the file (expected file name {spec.checkpoint_filename})."
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # tensor shapes differ: another model size
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise ValueError(
            f"checkpoint {path} does not fit SAM2 {spec.version} {spec.size} ({spec.config_name}): {first} {hint}"
        ) from err
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not fit SAM2 {spec.version} {spec.size} ({spec.config_name}): "
            f"{len(missing)} missing keys (e.g. {list(missing)[:3]}), {len(unexpected)} unexpected keys "
            f"(e.g. {list(unexpected)[:3]}). {hint}"
        )


def build_network(
    spec: ModelSpec,
    checkpoint: str | os.PathLike | None = None,
    random_weights: bool = False,
    allow_hub: bool = True,
    seed: int = 0,
) -> tuple[Any, str]:
    """Build the SAM2 network for ``spec`` on the CPU, in eval mode.

    Args:
        spec: Which network.
        checkpoint: Explicit checkpoint file (see ``weights.resolve_checkpoint`` for the order).
        random_weights: Build the untrained network on purpose (tests, CPU benchmarks). Its
            initialisation is seeded with ``seed`` (the global torch RNG is left untouched), so
            two such networks are identical.
        allow_hub: Whether the hub may be consulted.
        seed: Seed of the random initialisation.

    Returns:
        ``(model, source)`` where ``source`` says where the weights came from.

    Raises:
        WeightsNotFoundError: No checkpoint found (and ``random_weights`` is False).
        ValueError: Both ``checkpoint`` and ``random_weights`` given, or the checkpoint does not fit.
    """
    import torch

    if random_weights:
        if checkpoint is not None:
            raise ValueError("random_weights=True and checkpoint= were both given; pass one of them")
        logger.warning(
            "SAM2 %s %s built with RANDOM weights (random_weights=True): its masks are meaningless; "
            "use this for tests and speed measurements only",
            spec.version,
            spec.size,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_untrained(spec.config_name), "random"
    resolved = resolve_checkpoint(spec, checkpoint, allow_hub=allow_hub)
    model = build_untrained(spec.config_name)
    load_checkpoint(model, resolved.path, spec)
    logger.info("SAM2 %s %s weights loaded from %s (%s)", spec.version, spec.size, resolved.path, resolved.source)
    return model, f"{resolved.source}:{resolved.path}"

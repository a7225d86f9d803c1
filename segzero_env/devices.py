"""Device selection for torch backends. Imports torch only when called."""

from __future__ import annotations


def resolve_device(device: str = "auto") -> str:
    """Turn ``"auto"`` into the best available torch device, or validate an explicit one.

    ``"auto"`` picks CUDA when ``torch.cuda.is_available()``, else Apple's MPS when available,
    else ``"cpu"``. An explicit device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) is
    returned unchanged after checking that it exists.

    Args:
        device: ``"auto"`` or a torch device string.

    Returns:
        A torch device string.

    Raises:
        ValueError: The string is not a torch device, or names one this machine lacks.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device {device!r} is not a torch device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from err
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here; use device='auto' or 'cpu'")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if parsed.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {device!r} requested but MPS is not available here; use device='auto' or 'cpu'")
    return device

import pytest
import torch

from segzero_env.devices import resolve_device


def test_auto_picks_cuda_then_mps_then_cpu():
    mps = getattr(torch.backends, "mps", None)
    expected = "cuda" if torch.cuda.is_available() else "mps" if mps is not None and mps.is_available() else "cpu"
    assert resolve_device("auto") == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine-without-CUDA path")
def test_auto_is_cpu_here_and_unavailable_cuda_is_rejected():
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_explicit_and_invalid_devices():
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")

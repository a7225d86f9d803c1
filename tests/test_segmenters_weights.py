"""Weight resolution: explicit path, env var, folders, hub (offline), and the error when nothing is found."""

import numpy as np
import pytest
import torch

from segzero_env.segmenters.sam2_build import _build_from_yaml, build_network, build_untrained
from segzero_env.segmenters.weights import (
    CHECKPOINT_ENV,
    DIR_ENV,
    WeightsNotFoundError,
    model_spec,
    resolve_checkpoint,
)

TINY = model_spec("tiny")


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path):
    """No real cache folder, no env routes, no hub."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    monkeypatch.delenv(DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny checkpoint in the official format, from a random network seeded differently from the default."""
    model, _ = build_network(TINY, random_weights=True, seed=123)
    path = tmp_path_factory.mktemp("ckpt") / TINY.checkpoint_filename
    torch.save({"model": model.state_dict()}, path)
    return path, model.state_dict()


@pytest.mark.parametrize(
    ("model", "version", "config", "filename", "hub"),
    [
        ("large", "2.1", "configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt", "facebook/sam2.1-hiera-large"),
        (
            "B+",
            "2.1",
            "configs/sam2.1/sam2.1_hiera_b+.yaml",
            "sam2.1_hiera_base_plus.pt",
            "facebook/sam2.1-hiera-base-plus",
        ),
        (
            "base_plus",
            "2.0",
            "configs/sam2/sam2_hiera_b+.yaml",
            "sam2_hiera_base_plus.pt",
            "facebook/sam2-hiera-base-plus",
        ),
        ("s", "2.0", "configs/sam2/sam2_hiera_s.yaml", "sam2_hiera_small.pt", "facebook/sam2-hiera-small"),
        ("t", "2.1", "configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt", "facebook/sam2.1-hiera-tiny"),
    ],
)
def test_model_spec_names(model, version, config, filename, hub):
    spec = model_spec(model, version)
    assert (spec.config_name, spec.checkpoint_filename, spec.hub_id) == (config, filename, hub)
    assert spec.download_url.endswith(filename)


def test_model_spec_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown SAM2 model 'huge'"):
        model_spec("huge")
    with pytest.raises(ValueError, match="version"):
        model_spec("tiny", "3")


def test_missing_weights_error_lists_every_place_and_the_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "mine"))
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_checkpoint(TINY)
    message = str(info.value)
    assert len(info.value.tried) == 5
    for needle in (
        "$SEGZERO_SAM2_DIR",
        str(tmp_path / "xdg" / "segzero_env" / "sam2"),
        "hub cache facebook/sam2.1-hiera-tiny",
        "HF_HUB_OFFLINE is set",
        "sam2.1_hiera_tiny.pt",
        CHECKPOINT_ENV,
        "random_weights=True",
    ):
        assert needle in message
    assert isinstance(info.value, FileNotFoundError)


def test_segmenter_raises_the_same_error_without_weights():
    from segzero_env.segmenters.sam2_backend import SAM2Segmenter

    with pytest.raises(WeightsNotFoundError, match="no SAM2 2.1 tiny checkpoint found"):
        SAM2Segmenter("tiny", device="cpu")


def test_explicit_path_and_env_file_never_fall_through(tmp_path, monkeypatch):
    with pytest.raises(WeightsNotFoundError, match="no such file") as info:
        resolve_checkpoint(TINY, checkpoint=tmp_path / "nope.pt")
    assert len(info.value.tried) == 1
    monkeypatch.setenv(CHECKPOINT_ENV, str(tmp_path / "nope.pt"))
    with pytest.raises(WeightsNotFoundError, match=CHECKPOINT_ENV):
        resolve_checkpoint(TINY)


def test_resolution_order(tmp_path, monkeypatch, tiny_checkpoint):
    path, _ = tiny_checkpoint
    default_dir = tmp_path / "xdg" / "segzero_env" / "sam2"
    default_dir.mkdir(parents=True)
    (default_dir / TINY.checkpoint_filename).write_bytes(path.read_bytes())
    assert resolve_checkpoint(TINY).source == f"dir:{default_dir}"
    monkeypatch.setenv(DIR_ENV, str(path.parent))
    assert resolve_checkpoint(TINY).source == f"dir:{path.parent}"
    monkeypatch.setenv(CHECKPOINT_ENV, str(path))
    assert resolve_checkpoint(TINY).source == f"env:{CHECKPOINT_ENV}"
    other = tmp_path / "explicit.pt"
    other.write_bytes(b"x")
    assert resolve_checkpoint(TINY, checkpoint=other) == type(resolve_checkpoint(TINY))(other, "argument")


def test_checkpoint_loads_through_path_and_env_routes(monkeypatch, tiny_checkpoint):
    from segzero_env.segmenters.sam2_backend import SAM2Segmenter

    path, saved = tiny_checkpoint
    name = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
    by_path = SAM2Segmenter("tiny", checkpoint=path, device="cpu", allow_hub=False)
    assert by_path.weights_source == f"argument:{path}"
    torch.testing.assert_close(by_path.model.state_dict()[name], saved[name], rtol=0, atol=0)
    monkeypatch.setenv(CHECKPOINT_ENV, str(path))
    by_env = SAM2Segmenter("t", device="cpu", allow_hub=False)
    assert by_env.weights_source.startswith(f"env:{CHECKPOINT_ENV}")
    for key, value in saved.items():
        torch.testing.assert_close(by_env.model.state_dict()[key], value, rtol=0, atol=0)
    untrained, _ = build_network(TINY, random_weights=True)  # default seed 0: different weights
    assert not torch.equal(untrained.state_dict()[name], saved[name])


def test_checkpoint_of_another_size_is_a_clear_error(tiny_checkpoint):
    path, _ = tiny_checkpoint
    with pytest.raises(ValueError, match="does not fit SAM2 2.1 small.*model= and version="):
        build_network(model_spec("small"), checkpoint=path)
    with pytest.raises(ValueError, match="both given"):
        build_network(TINY, checkpoint=path, random_weights=True)


def test_random_weights_are_seeded_and_leave_the_global_rng_alone():
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    first, source = build_network(TINY, random_weights=True, seed=5)
    after = torch.rand(1)
    second, _ = build_network(TINY, random_weights=True, seed=5)
    assert source == "random" and torch.equal(before, after)
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_hydra_free_build_matches_build_sam2():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        via_hydra = build_untrained(TINY.config_name)
        torch.manual_seed(0)
        via_file = _build_from_yaml(TINY.config_name)
    a, b = via_hydra.state_dict(), via_file.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    decoder = via_file.sam_mask_decoder
    assert decoder.dynamic_multimask_via_stability and np.isclose(decoder.dynamic_multimask_stability_thresh, 0.98)

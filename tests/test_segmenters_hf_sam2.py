"""transformers Sam2Model backend on the CPU with random weights: same protocol, cache and batching."""

import numpy as np
import pytest
import torch

from segzero_env.segmenters import make_segmenter
from segzero_env.segmenters.hf_sam2 import HFSam2Segmenter
from segzero_env.segmenters.weights import WeightsNotFoundError
from segzero_env.types import Prompt


def prompts():
    group = [
        Prompt(box=(40 + 9 * i, 30, 260, 220), points=np.array([[120.0, 110], [180, 150 + i]]), point_labels=np.ones(2))
        for i in range(8)
    ]
    extra = [
        Prompt(box=(10, 10, 100, 100), points=np.zeros((0, 2)), point_labels=np.zeros(0)),
        Prompt(box=None, points=np.array([[30.0, 40]]), point_labels=np.array([0])),
        Prompt(box=None, points=np.zeros((0, 2)), point_labels=np.zeros(0)),
    ]
    return group + extra


@pytest.fixture(scope="module")
def seg():
    torch.set_num_threads(2)
    return make_segmenter("hf-sam2", random_weights=True, device="auto")


def test_one_encode_per_image_and_batched_equals_single(seg):
    image = np.random.default_rng(0).integers(0, 255, (300, 500, 3), dtype=np.uint8)
    out = seg.segment_with_logits(image, prompts(), "img")
    assert (seg.encode_calls, seg.decode_calls) == (1, 3)  # three prompt shapes; the empty one skips the model
    assert out.masks.shape == (11, 300, 500) and out.low_res_logits.shape == (11, 256, 256)
    assert not out.masks[10].any() and seg.cache.current_bytes == 16 * 1024 * 1024
    single = np.concatenate([seg.segment(image, [p], "img") for p in prompts()])
    assert seg.encode_calls == 1
    assert (single != out.masks).mean() <= 1e-5


def test_saved_folder_loads_and_missing_weights_are_a_clear_error(seg, tmp_path, monkeypatch):
    seg.model.save_pretrained(tmp_path / "hf")
    loaded = HFSam2Segmenter(model_path=tmp_path / "hf", device="cpu")
    for (key, a), b in zip(seg.model.state_dict().items(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="save_pretrained"):
        HFSam2Segmenter(model_path=tmp_path / "nothing-here", device="cpu")
    with pytest.raises(ValueError, match="exactly one"):
        HFSam2Segmenter(device="cpu")

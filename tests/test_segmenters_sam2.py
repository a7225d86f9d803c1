"""SAM2 backend on the CPU with random hiera-tiny weights: caching, batching, prompts, refinement inputs."""

import numpy as np
import pytest
import torch

from segzero_env.segmenters import SegmentRequest, make_segmenter
from segzero_env.segmenters.cache import ByteLRUCache, image_digest
from segzero_env.segmenters.sam2_backend import EMPTY_LOGIT, SAM2Segmenter
from segzero_env.types import Prompt

BYTES_PER_IMAGE_FP32 = 16 * 1024 * 1024  # documented in SAM2Segmenter's docstring


def prompt(box, points=(), labels=None, mask_input=None):
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    labels = np.ones(len(points), int) if labels is None else np.asarray(labels, int)
    return Prompt(box=box, points=points, point_labels=labels, mask_input=mask_input)


def image(seed, height=300, width=500):
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def group_prompts():
    """Eight Seg-Zero style replies: a box and two positive points each."""
    return [prompt((40 + 9 * i, 30 + 4 * i, 260 + 5 * i, 220), [(120 + i, 110), (180, 150 + 3 * i)]) for i in range(8)]


@pytest.fixture(scope="module")
def seg():
    torch.set_num_threads(2)
    return make_segmenter("sam2", model="tiny", random_weights=True, device="auto")


@pytest.fixture(scope="module")
def first_group(seg):
    """The module's one encode of image 0: a group of 8 prompts."""
    before = seg.encode_calls
    out = seg.segment_with_logits(image(0), group_prompts(), image_key="img-0")
    return out, seg.encode_calls - before


def test_device_auto_resolves_to_cpu_here(seg):
    if not torch.cuda.is_available():
        assert seg.device == "cpu" and seg.dtype == "float32"


def test_one_encode_per_image_for_a_group_and_masks_at_original_resolution(seg, first_group):
    out, encodes = first_group
    assert encodes == 1
    assert out.masks.shape == (8, 300, 500) and out.masks.dtype == bool
    assert out.low_res_logits.shape == (8, 256, 256) and out.scores.shape == (8,)
    before = (seg.encode_calls, seg.decode_calls)
    again = seg.segment(image(0), group_prompts(), image_key="img-0")
    assert seg.encode_calls == before[0]  # served from the cache
    assert seg.decode_calls == before[1] + 1  # all eight prompts in one decoder call
    np.testing.assert_array_equal(again, out.masks)


def test_cached_bytes_match_the_documented_figure(seg, first_group):
    entry = seg.cache.get(("img-0", image_digest(image(0))))
    assert entry is not None and entry.nbytes == BYTES_PER_IMAGE_FP32 and entry.orig_hw == (300, 500)


def test_batched_masks_equal_one_by_one_masks(seg, first_group):
    out, _ = first_group
    singles = [seg.segment_with_logits(image(0), [p], image_key="img-0") for p in group_prompts()]
    # Padded fixed-size decoder calls: bit-identical, whatever the companions.
    np.testing.assert_array_equal(np.concatenate([s.masks for s in singles]), out.masks)
    np.testing.assert_array_equal(np.concatenate([s.low_res_logits for s in singles]), out.low_res_logits)
    reordered = seg.segment(image(0), group_prompts()[::-1], image_key="img-0")
    np.testing.assert_array_equal(reordered[::-1], out.masks)
    unpadded = SAM2Segmenter.__new__(SAM2Segmenter)
    unpadded.__dict__.update(seg.__dict__)
    unpadded.pad_decode_batch = False
    alone = np.concatenate([unpadded.segment(image(0), [p], "img-0") for p in group_prompts()])
    assert (alone != out.masks).mean() <= 1e-5  # unpadded: float rounding of a smaller matmul at most


def test_matches_the_plain_predictor_with_seg_zero_mask_choice(seg):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(seg.model)
    p = group_prompts()[3]
    with torch.inference_mode():
        predictor.set_image(image(0))
        masks, scores, low_res = predictor.predict(p.points, p.point_labels, np.asarray(p.box), multimask_output=True)
    best = int(np.argmax(scores))
    ours = seg.segment_with_logits(image(0), [p], image_key="img-0")
    np.testing.assert_array_equal(ours.masks[0], masks[best] > 0)
    np.testing.assert_allclose(ours.low_res_logits[0], low_res[best], atol=1e-6)
    assert ours.scores[0] == pytest.approx(scores[best])


def test_mixed_prompt_shapes_degenerate_and_empty_prompts(seg, first_group):
    before = seg.decode_calls
    prompts = [
        prompt((40, 30, 260, 220), [(120, 110), (180, 150)]),
        prompt(None, [(100, 100)]),  # points only
        prompt((100, 100, 100, 180)),  # zero-area box
        prompt((-50, -40, 900, 700), [(-10, 1000), (np.nan, 3)], [1, 1]),  # clipped box, clipped + dropped points
        prompt(None),  # empty: no model call
        prompt((600, 400, 700, 500)),  # outside the image: dropped, so empty
        prompt((40, 30, 260, 220), [(120, 110), (250, 200)], [1, 0]),  # a negative click
    ]
    out = seg.segment_with_logits(image(0), prompts, image_key="img-0")
    assert out.masks.shape == (7, 300, 500)
    assert not out.masks[4].any() and not out.masks[5].any()
    assert (out.low_res_logits[4] == EMPTY_LOGIT).all() and out.scores[4] == 0
    # shapes: (box, 2 pts) x2, (no box, 1 pt), (box, 0 pts) x2, (box, 1 pt) -> 4 decoder calls
    assert seg.decode_calls - before == 4
    np.testing.assert_array_equal(out.masks[0], first_group[0].masks[0])
    assert not np.array_equal(out.low_res_logits[6], out.low_res_logits[0])  # the label 0 click mattered


def test_mask_input_is_used_and_logits_round_trip(seg, first_group):
    out, _ = first_group
    refine = prompt((40, 30, 260, 220), [(120, 110), (180, 150)], mask_input=out.low_res_logits[0])
    refined = seg.segment_with_logits(image(0), [refine], image_key="img-0")
    assert refined.low_res_logits.shape == (1, 256, 256)
    assert not np.allclose(refined.low_res_logits[0], out.low_res_logits[0])
    with pytest.raises(ValueError, match="mask_input"):
        seg.segment(image(0), [prompt((0, 0, 5, 5), mask_input=np.zeros((128, 128)))])


def test_requests_with_only_empty_prompts_never_encode(seg):
    before = seg.encode_calls
    masks = seg.segment(image(99, 20, 30), [prompt(None), prompt((-9, -9, -1, -1))])
    assert masks.shape == (2, 20, 30) and not masks.any() and seg.encode_calls == before


def test_segment_many_encodes_distinct_images_in_one_batch(seg, monkeypatch):
    monkeypatch.setattr(seg, "encode_batch_size", 4)
    before = (seg.encode_calls, seg.encoder_batches)
    a, b = image(1, 200, 320), image(2, 240, 180)
    requests = [
        SegmentRequest(a, group_prompts()[:3], "a"),
        SegmentRequest(b, group_prompts()[3:], "b"),
        SegmentRequest(a, group_prompts()[5:], "a"),  # same image again: no second encode
        SegmentRequest(b, [], "b"),
    ]
    outs = seg.segment_many(requests)
    assert (seg.encode_calls - before[0], seg.encoder_batches - before[1]) == (2, 1)
    assert [o.shape for o in outs] == [(3, 200, 320), (5, 240, 180), (3, 200, 320), (0, 240, 180)]
    single = seg.segment(b, group_prompts()[3:], "b")  # from the cache now
    assert seg.encode_calls - before[0] == 2
    assert (single != outs[1]).mean() <= 1e-4  # batch-encoded features agree with themselves re-used


def test_same_key_different_pixels_is_a_different_entry_and_eviction_respects_the_bound(seg):
    saved_cache, saved_count = seg.cache, seg.encode_calls
    try:
        seg.cache = ByteLRUCache(int(1.5 * BYTES_PER_IMAGE_FP32))
        p = group_prompts()[:2]
        first, second = image(3, 64, 64), image(4, 64, 64)
        seg.segment(first, p, "same-id")
        seg.segment(second, p, "same-id")  # a wrong key must not return the first image's features
        assert seg.encode_calls - saved_count == 2
        assert len(seg.cache) == 1 and seg.cache.evictions == 1
        assert seg.cache.current_bytes == BYTES_PER_IMAGE_FP32 <= seg.cache.max_bytes
        assert ("same-id", image_digest(first)) not in seg.cache and ("same-id", image_digest(second)) in seg.cache
        seg.segment(second, p, "same-id")
        assert seg.encode_calls - saved_count == 2
    finally:
        seg.cache = saved_cache


def test_single_mask_mode(seg, first_group):
    saved = seg.multimask
    try:
        seg.multimask = "single"
        out = seg.segment_with_logits(image(0), group_prompts()[:2], image_key="img-0")
    finally:
        seg.multimask = saved
    assert out.masks.shape == (2, 300, 500) and np.isfinite(out.scores).all()


def test_random_weights_are_identical_across_instances(seg):
    other = SAM2Segmenter("t", random_weights=True, device="cpu")
    for (key, a), b in zip(seg.model.state_dict().items(), other.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_argument_validation():
    with pytest.raises(ValueError, match="multimask"):
        SAM2Segmenter("tiny", random_weights=True, device="cpu", multimask="all")
    with pytest.raises(ValueError, match="unknown SAM2 model"):
        SAM2Segmenter("giant", random_weights=True, device="cpu")
    with pytest.raises(ValueError, match="dtype"):
        SAM2Segmenter("tiny", random_weights=True, device="cpu", dtype="float16")


@pytest.mark.slow
def test_bfloat16_autocast_shrinks_the_cached_bytes():
    bf16 = SAM2Segmenter("tiny", random_weights=True, device="cpu", dtype="bfloat16")
    masks = bf16.segment(image(0, 64, 80), group_prompts()[:2], "x")
    assert masks.shape == (2, 64, 80) and bf16.cache.current_bytes == 10 * 1024 * 1024  # as documented


def test_importing_the_backends_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, segzero_env, segzero_env.devices, segzero_env.segmenters.sam2_backend, "
        "segzero_env.segmenters.grabcut, segzero_env.segmenters.box; "
        "print('torch' in sys.modules, 'sam2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]

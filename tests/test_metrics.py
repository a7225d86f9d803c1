import math

import numpy as np
import pytest

from segzero_env.metrics import IoUAccumulator, SampleIoU, sample_iou


def _masks():
    # GT: 4 target pixels, 2 ignore pixels; prediction: 3 on target, 2 on ignore, 1 on background.
    gt = np.zeros((4, 4), np.uint8)
    gt[0, 0:4] = 1
    gt[1, 0:2] = 255
    pred = np.zeros((4, 4), bool)
    pred[0, 0:3] = True
    pred[1, 0:2] = True
    pred[3, 3] = True
    return pred, gt


def test_lisa_sample_removes_ignore_from_every_count():
    pred, gt = _masks()
    assert sample_iou(pred, gt) == SampleIoU(3, 5, 0.6)  # I = 3, U = |{3 target-hits, 1 bg}| + 1 missed target


def test_seg_zero_sample_counts_ignore_as_target():
    pred, gt = _masks()
    # Target = 6 pixels (4 + 2 ignore); I = 5, U = 6 + 1 background = 7.
    assert sample_iou(pred, gt, "seg-zero") == SampleIoU(5, 7, 5 / 7)


def test_empty_cases():
    empty = np.zeros((3, 3), np.uint8)
    only_ignore = np.full((3, 3), 255, np.uint8)
    assert sample_iou(None, empty).iou == 1.0
    assert sample_iou(np.ones((3, 3), bool), only_ignore) == SampleIoU(0, 0, 1.0)  # everything predicted is ignored
    assert sample_iou(np.zeros((3, 3), bool), empty) == SampleIoU(0, 0, 1.0)
    assert math.isnan(sample_iou(None, empty, "seg-zero").iou)
    target = np.ones((3, 3), np.uint8)
    assert sample_iou(None, target) == SampleIoU(0, 9, 0.0)
    assert sample_iou(None, target, "seg-zero") == SampleIoU(0, 9, 0.0)


def test_bool_ground_truth_and_shape_checks():
    gt = np.array([[True, False]])
    assert sample_iou(np.array([[True, True]]), gt).iou == 0.5
    with pytest.raises(ValueError, match="shape"):
        sample_iou(np.zeros((2, 2), bool), np.zeros((3, 3), np.uint8), "seg-zero")
    with pytest.raises(ValueError, match="unknown IoU definition"):
        sample_iou(None, gt.astype(np.uint8), "coco")
    with pytest.raises(ValueError, match="unknown IoU definition"):
        IoUAccumulator("coco")


def test_accumulators_hand_computed():
    pred, gt = _masks()
    empty = np.zeros((4, 4), np.uint8)
    full = np.ones((4, 4), np.uint8)
    lisa = IoUAccumulator()
    segzero = IoUAccumulator("seg-zero")
    for acc in (lisa, segzero):
        acc.update(pred, gt)
        acc.update(None, empty)  # both empty
        acc.update(None, full)  # unusable reply on a full target: I 0, U 16
    # LISA: ious 0.6, 1.0, 0.0 -> gIoU 1.6/3; cIoU (3 + 0 + 0) / (5 + 0 + 16).
    assert lisa.n == 3 and lisa.n_skipped == 0
    assert lisa.giou == pytest.approx(1.6 / 3) and lisa.ciou == pytest.approx(3 / 21)
    # Seg-Zero: the empty sample is skipped; ious 5/7, 0 -> gIoU 5/14; cIoU 5 / (7 + 16).
    assert segzero.n == 2 and segzero.n_skipped == 1
    assert segzero.giou == pytest.approx(5 / 14) and segzero.ciou == pytest.approx(5 / 23)
    assert lisa.summary() == {"giou": lisa.giou, "ciou": lisa.ciou, "n": 3, "n_skipped": 0, "definition": "lisa"}
    assert "n=3" in repr(lisa)


def test_merge_for_split_reports():
    pred, gt = _masks()
    short, long_ = IoUAccumulator(), IoUAccumulator()
    short.update(pred, gt)
    long_.update(None, np.ones((4, 4), np.uint8))
    long_.update(np.ones((4, 4), bool), np.ones((4, 4), np.uint8))
    overall = short + long_
    assert overall.n == 3 and overall.giou == pytest.approx((0.6 + 0 + 1) / 3)
    assert overall.ciou == pytest.approx((3 + 0 + 16) / (5 + 16 + 16))
    assert short.n == 1  # inputs untouched
    with pytest.raises(ValueError, match="definitions"):
        short.merge(IoUAccumulator("seg-zero"))


def test_empty_accumulator_reports_zero():
    acc = IoUAccumulator()
    assert (acc.giou, acc.ciou, acc.n) == (0.0, 0.0, 0)

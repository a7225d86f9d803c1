import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segzero_env import geometry as g


def test_box_iou_conventions():
    # Inclusive pixels: a 10x10 box vs the same box shifted by 5 -> 50 / 150.
    assert g.box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)
    # The same numbers in the continuous convention: 45 / 135 (width 9 each, overlap 4).
    assert g.box_iou((0, 0, 9, 9), (5, 0, 14, 9), inclusive=False) == pytest.approx(4 * 9 / (81 + 81 - 36))
    # Degenerate one-pixel box is a pixel in the inclusive convention, nothing in the continuous one.
    assert g.box_iou((3, 3, 3, 3), (3, 3, 3, 3)) == 1.0
    assert g.box_iou((3, 3, 3, 3), (3, 3, 3, 3), inclusive=False) == 0.0
    # Touching edges share a pixel column when inclusive.
    assert g.box_iou((0, 0, 4, 0), (4, 0, 8, 0)) == pytest.approx(1 / 9)
    assert g.box_iou((0, 0, 4, 4), (10, 10, 12, 12)) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=8, max_size=8))
def test_box_iou_matches_pixel_counting(v):
    a = (min(v[0], v[1]), min(v[2], v[3]), max(v[0], v[1]), max(v[2], v[3]))
    b = (min(v[4], v[5]), min(v[6], v[7]), max(v[4], v[5]), max(v[6], v[7]))
    ma = np.zeros((41, 41), bool)
    mb = np.zeros((41, 41), bool)
    ma[a[1] : a[3] + 1, a[0] : a[2] + 1] = True
    mb[b[1] : b[3] + 1, b[0] : b[2] + 1] = True
    expected = (ma & mb).sum() / (ma | mb).sum()
    assert g.box_iou(a, b) == pytest.approx(expected)
    assert g.box_iou(a, b) == pytest.approx(g.box_iou(b, a))


def test_box_l1_and_point_in_box():
    assert g.box_l1((0, 0, 10, 10), (4, 0, 10, 6)) == 2.0
    assert g.point_in_box((0, 0), (0, 0, 5, 5)) and g.point_in_box((5, 5), (0, 0, 5, 5))
    assert not g.point_in_box((5.01, 5), (0, 0, 5, 5)) and not g.point_in_box((-1, 2), (0, 0, 5, 5))


def test_best_order_point_distance():
    assert g.best_order_point_distance([(0, 0), (10, 0)], [(10, 0), (0, 0)]) == 0.0
    assert g.best_order_point_distance([(0, 0), (0, 0)], [(3, 4), (6, 8)]) == 7.5
    assert g.best_order_point_distance([(1, 1)], [(4, 5)]) == 5.0
    assert g.best_order_point_distance([], []) == math.inf
    with pytest.raises(ValueError, match="as many"):
        g.best_order_point_distance([(0, 0)], [(0, 0), (1, 1)])
    rng = np.random.default_rng(0)
    for n in (3, 7, 9):  # brute force and the assignment solver agree with exhaustive search
        p = [tuple(x) for x in rng.uniform(0, 100, (n, 2))]
        q = [tuple(x) for x in rng.uniform(0, 100, (n, 2))]
        got = g.best_order_point_distance(p, q)
        if n <= 7:
            best = (
                min(
                    sum(g.point_distance(p[i], q[j]) for i, j in enumerate(perm))
                    for perm in itertools.permutations(range(n))
                )
                / n
            )
            assert got == pytest.approx(best)
        assert got <= sum(g.point_distance(a, b) for a, b in zip(p, q, strict=True)) / n + 1e-9


def test_mask_iou_lisa_rules():
    gt = np.array([[1, 1, 0, 0], [255, 255, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)
    pred = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=bool)
    # Predicted pixels on ignore are dropped: P = {(0,0), (2,3)}, G = {(0,0), (0,1)}.
    assert g.mask_iou(pred, gt) == (1, 3)
    assert g.mask_iou(None, gt) == (0, 2)
    assert g.mask_iou(np.zeros((3, 4), bool), np.zeros((3, 4), np.uint8)) == (0, 0)
    assert g.mask_iou(pred.astype(np.uint8), gt) == (1, 3)
    with pytest.raises(ValueError, match="shape"):
        g.mask_iou(np.zeros((2, 2), bool), gt)


def test_mask_to_box():
    m = np.zeros((10, 12), np.uint8)
    m[2:5, 3:9] = 1
    m[0, 0] = 255  # ignore is not target
    assert g.mask_to_box(m) == (3.0, 2.0, 8.0, 4.0)
    assert g.mask_to_box(m.astype(bool)) == (0.0, 0.0, 8.0, 4.0)
    assert g.mask_to_box(np.zeros((4, 4), np.uint8)) is None


def test_mask_to_points_inside_and_spread():
    m = np.zeros((40, 100), np.uint8)
    m[10:30, 5:95] = 1  # a long bar: the two clicks land at opposite ends
    p1, p2 = g.mask_to_points(m)
    for x, y in (p1, p2):
        assert m[int(y), int(x)] == 1
    assert abs(p1[0] - p2[0]) > 50
    assert g.mask_to_points(m) == (p1, p2)  # deterministic
    # Two blobs: the first point in the bigger one, the second in the other (the far half).
    two = np.zeros((50, 120), bool)
    two[5:45, 5:45] = True
    two[15:35, 90:110] = True
    q1, q2 = g.mask_to_points(two)
    assert q1[0] < 45 and q2[0] >= 90
    assert g.mask_to_points(np.zeros((5, 5), bool)) == ()
    single = np.zeros((5, 5), bool)
    single[2, 3] = True
    assert g.mask_to_points(single, n=3) == ((3.0, 2.0),) * 3
    # The image border counts as outside: a full mask's deepest point is its centre.
    assert g.mask_to_points(np.ones((11, 11), bool), n=1) == ((5.0, 5.0),)


def test_frame_mapping_rounds_half_up():
    assert g.to_original_frame_point((1, 1), 4, 6, 2) == (2, 1)  # 1.5 -> 2, 0.5 -> 1
    assert g.to_original_frame_point((839, 0), 840, 1, 1) == (1, 0)
    assert g.to_original_frame_box((10, 20, 30, 40), 100, 50, 200) == (5, 40, 15, 80)
    box = (12.5, 100.0, 700.25, 839.0)
    back = g.to_original_frame_box(g.to_observation_frame_box(box, 840, 840, 840), 840, 840, 840)
    assert back == (13, 100, 700, 839)
    pt = g.to_observation_frame_point((320, 240), 840, 640, 480)
    assert pt == (420.0, 420.0) and g.to_original_frame_point(pt, 840, 640, 480) == (320, 240)


def test_clip():
    assert g.clip_box((-10, -10, 1000, 1000), 640, 480) == (0, 0, 639, 479)
    assert g.clip_box((700, 500, 800, 600), 640, 480) == (639, 479, 639, 479)
    assert g.clip_point((5.5, -0.5), 10, 10) == (5.5, 0)


def _box_iou_by_builtins(a, b, inclusive=True):
    one = 1.0 if inclusive else 0.0
    iw = min(a[2], b[2]) - max(a[0], b[0]) + one
    ih = min(a[3], b[3]) - max(a[1], b[1]) + one
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    area_a = max(a[2] - a[0] + one, 0.0) * max(a[3] - a[1] + one, 0.0)
    area_b = max(b[2] - b[0] + one, 0.0) * max(b[3] - b[1] + one, 0.0)
    union = area_a + area_b - inter
    return float(inter / union) if union > 0 else 0.0


def test_box_iou_equals_the_min_max_formula_on_every_value():
    # box_iou spells min / max as comparisons: the same result on ints, floats, NaN, infinities and overflow.
    rng = np.random.default_rng(0)
    values = [0, 1, 5, -3, 2.5, 10**20, 1e308, -1e308, math.inf, -math.inf, math.nan, 7, 7.0, 3]
    for _ in range(20_000):
        a = [values[i] for i in rng.integers(0, len(values), 4)]
        b = [values[i] for i in rng.integers(0, len(values), 4)]
        for inclusive in (True, False):
            assert repr(g.box_iou(a, b, inclusive)) == repr(_box_iou_by_builtins(a, b, inclusive)), (a, b)

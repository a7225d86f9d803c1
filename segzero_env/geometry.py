"""Box, point and mask geometry: pure functions on Python numbers and numpy arrays.

Conventions (the same everywhere in the package):

* A box is ``(x1, y1, x2, y2)`` in pixels, ``x1 <= x2`` and ``y1 <= y2``. With the *inclusive-pixel*
  convention a box covers the pixels ``x1..x2`` and ``y1..y2``, so its width is ``x2 - x1 + 1``
  (Seg-Zero's box reward uses it); the *continuous* convention has width ``x2 - x1``.
* A point is ``(x, y)``; ``x`` is the column, ``y`` the row.
* Masks are ``H x W`` arrays. A prediction is bool; a ground truth is uint8 with 0 background,
  1 target and 255 ignore.
* Replies speak in the ``S x S`` observation frame (the image the policy sees, resized without keeping
  the aspect ratio); segmenters and metrics work in the original ``W x H`` frame.
  :func:`to_original_frame_box` and :func:`to_observation_frame_box` map between them.

Scalar functions use plain Python arithmetic on purpose: rewards call them once per reply, and
numpy's per-call overhead would dominate on four numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from segzero_env.types import Box, Point

IGNORE_VALUE = 255
"""Ground-truth mask value for pixels left out of every count."""

_MAX_BRUTE_FORCE_POINTS = 6


def box_iou(a: Sequence[float], b: Sequence[float], inclusive: bool = True) -> float:
    """Intersection over union of two boxes.

    Args:
        a: First box ``(x1, y1, x2, y2)``.
        b: Second box.
        inclusive: Inclusive-pixel convention (width ``x2 - x1 + 1``) when True, continuous
            (width ``x2 - x1``) when False.

    Returns:
        IoU in ``[0, 1]``; 0.0 when the union is empty.

    >>> box_iou((0, 0, 9, 9), (0, 0, 9, 9))
    1.0
    >>> box_iou((0, 0, 9, 9), (5, 0, 14, 9))
    0.3333333333333333
    >>> box_iou((0, 0, 10, 10), (5, 0, 15, 10), inclusive=False)
    0.3333333333333333
    >>> box_iou((0, 0, 1, 1), (5, 5, 6, 6))
    0.0
    """
    one = 1.0 if inclusive else 0.0
    ax1, ay1, ax2, ay2 = a[0], a[1], a[2], a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[2], b[3]
    # min(u, v) is "v if v < u else u" and max(u, v) "v if v > u else u", as the builtins (NaN
    # included), without their calls: rewards score every reply with this.
    iw = (bx2 if bx2 < ax2 else ax2) - (bx1 if bx1 > ax1 else ax1) + one
    ih = (by2 if by2 < ay2 else ay2) - (by1 if by1 > ay1 else ay1) + one
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    wa, ha, wb, hb = ax2 - ax1 + one, ay2 - ay1 + one, bx2 - bx1 + one, by2 - by1 + one
    area_a = (0.0 if wa < 0.0 else wa) * (0.0 if ha < 0.0 else ha)
    area_b = (0.0 if wb < 0.0 else wb) * (0.0 if hb < 0.0 else hb)
    union = area_a + area_b - inter
    return float(inter / union) if union > 0 else 0.0


def box_l1(a: Sequence[float], b: Sequence[float]) -> float:
    """Mean absolute difference of the four box coordinates.

    >>> box_l1((0, 0, 10, 10), (2, 0, 10, 14))
    1.5
    """
    return (abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2]) + abs(a[3] - b[3])) / 4.0


def point_in_box(point: Sequence[float], box: Sequence[float]) -> bool:
    """Whether a point lies inside a box, edges included.

    >>> point_in_box((10, 5), (0, 0, 10, 10)), point_in_box((10.5, 5), (0, 0, 10, 10))
    (True, False)
    """
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def point_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Euclidean distance between two points.

    >>> point_distance((0, 0), (3, 4))
    5.0
    """
    return math.hypot(p[0] - q[0], p[1] - q[1])


def best_order_point_distance(pred_points: Sequence[Sequence[float]], gt_points: Sequence[Sequence[float]]) -> float:
    """Mean Euclidean distance between two point sets, under the best pairing.

    Every predicted point is paired with a distinct ground-truth point; the pairing with the
    smallest mean distance wins (for two points: the better of the two orderings).

    Args:
        pred_points: Predicted points.
        gt_points: Ground-truth points, as many as ``pred_points``.

    Returns:
        The mean distance, or ``inf`` when both sets are empty.

    Raises:
        ValueError: If the two sets differ in size.

    >>> best_order_point_distance([(10, 0), (0, 0)], [(0, 0), (10, 0)])
    0.0
    >>> best_order_point_distance([(0, 0), (0, 10)], [(0, 3), (0, 14)])
    3.5
    """
    n = len(pred_points)
    if n != len(gt_points):
        raise ValueError(
            f"best_order_point_distance needs as many predicted points as ground-truth points, "
            f"got {n} and {len(gt_points)}"
        )
    if n == 0:
        return math.inf
    if n == 1:
        return point_distance(pred_points[0], gt_points[0])
    if n == 2:
        p0, p1 = pred_points
        g0, g1 = gt_points
        straight = point_distance(p0, g0) + point_distance(p1, g1)
        crossed = point_distance(p0, g1) + point_distance(p1, g0)
        return min(straight, crossed) / 2.0
    if n <= _MAX_BRUTE_FORCE_POINTS:
        best = min(
            sum(point_distance(pred_points[i], gt_points[j]) for i, j in enumerate(perm))
            for perm in itertools.permutations(range(n))
        )
        return best / n
    from scipy.optimize import linear_sum_assignment

    cost = np.array([[point_distance(p, g) for g in gt_points] for p in pred_points])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def mask_iou(pred: np.ndarray | None, gt: np.ndarray, ignore_value: int = IGNORE_VALUE) -> tuple[int, int]:
    """Intersection and union of a predicted mask and a ground truth, LISA's rules.

    Pixels where ``gt == ignore_value`` are removed from every count, the prediction's included.
    Target pixels are ``gt == 1``.

    Args:
        pred: ``H x W`` bool prediction; ``None`` is an empty prediction.
        gt: ``H x W`` uint8 ground truth (0 / 1 / ``ignore_value``).
        ignore_value: Value of ignored ground-truth pixels.

    Returns:
        ``(intersection, union)`` pixel counts.

    Raises:
        ValueError: If the shapes differ.

    >>> gt = np.array([[1, 1, 0], [0, 255, 0]], dtype=np.uint8)
    >>> pred = np.array([[1, 0, 0], [0, 1, 1]], dtype=bool)
    >>> mask_iou(pred, gt)
    (1, 3)
    """
    target = gt == 1
    if pred is None:
        n = int(np.count_nonzero(target))
        return 0, n
    if pred.shape != gt.shape:
        raise ValueError(f"mask_iou: prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    if pred.dtype != np.bool_:
        pred = pred.astype(bool)
    inter = int(np.count_nonzero(pred & target))
    # Predicted pixels on ignore are not counted: union = |pred \ ignore| + |target| - I.
    pred_count = int(np.count_nonzero(pred)) - int(np.count_nonzero(pred & (gt == ignore_value)))
    union = pred_count + int(np.count_nonzero(target)) - inter
    return inter, union


def _target(mask: np.ndarray) -> np.ndarray:
    """Target pixels of a bool mask (True) or a uint8 ground truth (== 1)."""
    if mask.dtype == np.bool_:
        return mask
    return mask == 1


def mask_to_box(mask: np.ndarray) -> Box | None:
    """Extent of the target pixels, inclusive pixel coordinates.

    Args:
        mask: ``H x W`` bool mask, or uint8 ground truth whose target value is 1 (255 is not target).

    Returns:
        ``(x1, y1, x2, y2)`` as floats, or ``None`` when the mask has no target pixel.

    >>> m = np.zeros((5, 6), dtype=np.uint8); m[1:3, 2:5] = 1
    >>> mask_to_box(m)
    (2.0, 1.0, 4.0, 2.0)
    >>> mask_to_box(np.zeros((3, 3), dtype=bool)) is None
    True
    """
    target = _target(mask)
    cols = np.flatnonzero(target.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(target.any(axis=1))
    return (float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1]))


def mask_to_points(mask: np.ndarray, n: int = 2) -> tuple[Point, ...]:
    """Centres of large inscribed circles of the target, from the distance transform.

    The first point is the maximum of the distance transform (distance to the nearest non-target
    pixel, the image border counting as non-target). Each later point is the maximum over the
    *far half* of the target: the target pixels whose distance to the nearest earlier point is at
    least the median of those distances. Ties go to the pixel farthest from the earlier points,
    then to the first in row-major order, so the result is deterministic.

    Args:
        mask: ``H x W`` bool mask or uint8 ground truth (target value 1).
        n: Number of points.

    Returns:
        ``n`` points ``(x, y)`` as floats, or ``()`` when the mask has no target pixel.

    >>> m = np.zeros((7, 20), dtype=bool); m[1:6, 1:19] = True
    >>> mask_to_points(m)
    ((3.0, 3.0), (16.0, 3.0))
    """
    import cv2

    target = _target(mask)
    if not target.any():
        return ()
    padded = np.pad(target.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    ys, xs = np.nonzero(target)
    values = dist[ys, xs]
    first = int(np.argmax(values))
    points: list[Point] = [(float(xs[first]), float(ys[first]))]
    nearest = np.full(xs.shape, np.inf)
    for _ in range(1, n):
        px, py = points[-1]
        nearest = np.minimum(nearest, np.hypot(xs - px, ys - py))
        far = nearest >= np.median(nearest)
        far_values = np.where(far, values, -1.0)
        # Among equally deep pixels prefer the one farthest from earlier points: spreads the clicks.
        deepest = far_values == far_values.max()
        idx = int(np.argmax(np.where(deepest, nearest, -1.0)))
        points.append((float(xs[idx]), float(ys[idx])))
    return tuple(points)


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def to_original_frame_point(point: Sequence[float], image_size: int, width: int, height: int) -> tuple[int, int]:
    """Map a point from the ``S x S`` observation frame to the original ``W x H`` image.

    ``x * W / S`` and ``y * H / S``, rounded half up.

    >>> to_original_frame_point((420, 105), 840, 1000, 500)
    (500, 63)
    """
    return (_round_half_up(point[0] * width / image_size), _round_half_up(point[1] * height / image_size))


def to_original_frame_box(box: Sequence[float], image_size: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Map a box from the ``S x S`` observation frame to the original image (rounded half up).

    >>> to_original_frame_box((0, 0, 839, 839), 840, 420, 1680)
    (0, 0, 420, 1678)
    """
    sx = width / image_size
    sy = height / image_size
    return (
        _round_half_up(box[0] * sx),
        _round_half_up(box[1] * sy),
        _round_half_up(box[2] * sx),
        _round_half_up(box[3] * sy),
    )


def to_observation_frame_point(point: Sequence[float], image_size: int, width: int, height: int) -> Point:
    """Map a point from the original image to the ``S x S`` frame (``x * S / W``; no rounding).

    >>> to_observation_frame_point((500, 250), 840, 1000, 500)
    (420.0, 420.0)
    """
    return (point[0] * image_size / width, point[1] * image_size / height)


def to_observation_frame_box(box: Sequence[float], image_size: int, width: int, height: int) -> Box:
    """Map a box from the original image to the ``S x S`` frame (no rounding).

    >>> to_observation_frame_box((0, 0, 100, 50), 840, 200, 100)
    (0.0, 0.0, 420.0, 420.0)
    """
    sx = image_size / width
    sy = image_size / height
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def clip_point(point: Sequence[float], width: int, height: int) -> Point:
    """Clip a point into the image: ``0 <= x <= W - 1``, ``0 <= y <= H - 1``.

    >>> clip_point((-3, 700), 640, 480)
    (0, 479)
    """
    return (min(max(point[0], 0), width - 1), min(max(point[1], 0), height - 1))


def clip_box(box: Sequence[float], width: int, height: int) -> Box:
    """Clip a box into the image, corner by corner (a box wholly outside collapses onto the edge).

    >>> clip_box((-5, 10, 700, 20), 640, 480)
    (0, 10, 639, 20)
    """
    xmax = width - 1
    ymax = height - 1
    return (
        min(max(box[0], 0), xmax),
        min(max(box[1], 0), ymax),
        min(max(box[2], 0), xmax),
        min(max(box[3], 0), ymax),
    )

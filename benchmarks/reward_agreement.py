"""Term-by-term agreement of the ``upstream`` rules with the published rewards on many generated replies.

Every reply of ``--seeds`` batches of :func:`upstream_baseline.generate_replies` (2,000 mutated
replies a batch, half Seg-Zero-style and half VisionReasoner-style) is scored by the package's
``upstream`` rules (``parse_reply`` + ``compute_terms``) and by the re-implemented Seg-Zero and
VisionReasoner rewards; a reply counts as a disagreement when any term differs. The test suite
checks 3,000 replies; this script checks as many as you ask for.

Usage::

    python benchmarks/reward_agreement.py --seeds 100     # 200,000 replies, ~40 s
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import upstream_baseline as baseline  # noqa: E402
from bench_rewards import GT_BOX, GT_POINTS  # noqa: E402  (the speed benchmark's ground truth)

from segzero_env.parsing import parse_reply  # noqa: E402
from segzero_env.rewards import RewardInput, compute_terms  # noqa: E402


def disagreements(seeds: range, show: int = 5) -> tuple[int, int]:
    """``(replies checked, replies with a differing term)``; the first ``show`` differences are printed."""
    gt_box = tuple(float(v) for v in GT_BOX)
    gt_points = tuple((float(x), float(y)) for x, y in GT_POINTS)
    sol_sz = baseline.seg_zero_solution(GT_BOX, GT_POINTS)
    sol_vr = baseline.vision_reasoner_solution([(GT_BOX, GT_POINTS[0])])
    checked = differ = 0
    for seed in seeds:
        for reply in baseline.generate_replies(2000, seed=seed):
            ours = compute_terms(RewardInput(reply, parse_reply(reply), gt_box, gt_points, None, None, 840), "upstream")
            ref = {**baseline.seg_zero_terms(reply, sol_sz), **baseline.vision_reasoner_terms(reply, sol_vr)}
            checked += 1
            diff = {k: (ours[k], v) for k, v in ref.items() if ours[k] != v}
            if diff:
                differ += 1
                if differ <= show:
                    print(f"differs: {reply!r}: {diff} (ours, published)")
    return checked, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="batches of 2,000 generated replies (default 10)")
    parser.add_argument("--first-seed", type=int, default=100, help="seed of the first batch (the tests use 11)")
    opts = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # the published rules' numpy on NaN boxes
    checked, differ = disagreements(range(opts.first_seed, opts.first_seed + opts.seeds))
    print(f"{checked} replies, {differ} with a term that differs from the published rewards")
    if differ:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

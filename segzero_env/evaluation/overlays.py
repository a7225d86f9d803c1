"""Pictures of an evaluation: per-sample overlays and the IoU distribution."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segzero_env.envs.render import draw_overlay


def overlay_filename(index: int, sample_id: str, iou: float) -> str:
    """Return a sortable, filesystem-safe file name: ``00012_<sample id>_iou0.734.png``.

    >>> overlay_filename(12, "val/cat 1", 0.73449)
    '00012_val_cat_1_iou0.734.png'
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(sample_id)).strip("_")[:80] or "sample"
    return f"{index:05d}_{safe}_iou{iou:.3f}.png"


def save_overlay(path: str | Path, sample: Any, outcome: Any, iou: float) -> Path:
    """Draw a sample with its prediction and write it as a PNG.

    Args:
        path: Output file.
        sample: The :class:`~segzero_env.types.Sample` (original frame).
        outcome: The env's last scored outcome for it (``pred_mask`` and ``prompts``), or ``None``.
        iou: The IoU to print under the picture (the evaluation metric's value for this sample).

    Returns:
        The path written.
    """
    from PIL import Image

    picture = draw_overlay(
        sample.image,
        sample.query,
        gt_mask=sample.mask,
        pred_mask=None if outcome is None else outcome.pred_mask,
        prompts=() if outcome is None else outcome.prompts,
        iou=iou,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)
    return path


def save_iou_histogram(
    ious: Sequence[float], path: str | Path, title: str = "IoU distribution", kinds: Sequence[str | None] | None = None
) -> Path:
    """Plot a histogram of per-sample IoUs (stacked by query kind when given) and save it as a PNG.

    Args:
        ious: Per-sample IoU values in ``[0, 1]``.
        path: Output file.
        title: Plot title (the run's gIoU is a good thing to put there).
        kinds: Optional query kind per sample (``"short"`` / ``"long"`` / ``None``); stacks the bars.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    values = np.asarray(list(ious), dtype=float)
    bins = np.linspace(0.0, 1.0, 21)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        if kinds is not None and len(set(kinds) - {None}) > 1:
            labels = sorted({str(k) for k in kinds})
            groups = [values[[str(k) == label for k in kinds]] for label in labels]
            ax.hist(groups, bins=bins, stacked=True, label=labels)
            ax.legend()
        else:
            ax.hist(values, bins=bins, color="tab:blue")
        if len(values):
            ax.axvline(float(values.mean()), color="black", linestyle="--", linewidth=1, label="mean")
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("per-sample IoU")
        ax.set_ylabel("samples")
        ax.set_title(title)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path

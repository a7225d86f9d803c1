"""Where training metrics go: TensorBoard, ``metrics.jsonl`` and a table of sample replies.

Metric names are namespaced like ``rewards/mask_iou`` or ``losses/kl``; ``metrics.jsonl`` holds one
JSON object per step with the short keys ``step``, ``loss``, ``reward_mean`` and ``kl`` first, then
every namespaced metric, then ``sample_ids`` (the samples of every process, in process order).
With several processes, rewards, reply statistics and losses cover all processes' replies.

Namespaces:

- ``rewards/``: ``mean``, ``std`` (over all replies), one key per reward term (its mean; only the
  terms, not the vector env's ``_<name>`` presence masks),
  ``frac_zero_std_groups`` (groups whose replies all scored the same: they teach nothing).
- ``losses/``: ``loss`` (what was minimised), ``policy`` (clipped surrogate alone), ``kl`` (mean
  per-token k3 KL to the reference).
- ``policy/``: ``clip_frac``, ``grad_norm`` (before clipping), ``lr``.
- ``replies/``: ``length`` (mean tokens), ``truncated_rate`` (hit the length limit),
  ``unusable_rate`` (no answer could be parsed).
- ``env/``: ``iou`` (mean mask IoU of the step's replies).
- ``rollout/``: ``prompts`` and ``replies`` scored this step, over all processes.
- ``time/``: ``rollout_s`` (generation), ``env_s`` (scoring, segmenter included), ``update_s``, ``step_s``.
- ``eval/``: ``giou``, ``ciou``, ``n``, ``unusable_rate`` from periodic evaluation (greedy replies on
  held-out samples); with ``eval_every`` set, step 0 holds the evaluation before the first update.
- ``turns/`` (refinement episodes, ``max_turns > 1``): ``iou_<k>`` (mean IoU after turn ``k``, a
  finished trajectory counting with its last mask), ``iou_gain``, ``stop_rate``, ``turns_used``,
  ``played_<k>``, ``unusable_rate_<k>``; ``rewards/`` then describe whole trajectories (``mean`` is
  the mean return, a term's value its sum over the turns played) and ``eval/`` adds
  ``giou_turn_<k>``, ``stop_rate`` and ``turns_used`` (``giou`` and ``ciou`` are after the last turn).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
SHORT_KEYS = {"loss": "losses/loss", "reward_mean": "rewards/mean", "kl": "losses/kl"}


class MetricsLogger:
    """Writes metrics of the main process; other processes pass ``enabled=False`` and write nothing.

    Args:
        output_dir: The run folder (``metrics.jsonl`` and ``tensorboard/`` go there).
        enabled: Whether this process writes.
        resume_step: When resuming, lines of ``metrics.jsonl`` after this step are dropped (they were
            written after the checkpoint and will be written again), and so is a torn last line.
    """

    def __init__(self, output_dir: str | Path, enabled: bool = True, resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / METRICS_FILE
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line, record in self._read_records() if record["step"] <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))

    def _read_records(self) -> list[tuple[str, dict[str, Any]]]:
        """The lines of ``metrics.jsonl`` with their records; a torn last line (a kill mid-write) is dropped.

        Raises:
            ValueError: A line other than the last does not parse: the file was damaged otherwise.
        """
        lines = [line for line in self.path.read_text(errors="replace").splitlines() if line.strip()]
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                    raise ValueError("no step")
            except ValueError as exc:
                if number == len(lines):
                    warnings.warn(
                        f"{self.path}: dropping the torn last line {number} ({line[:60]!r}), "
                        "written when the run was stopped",
                        stacklevel=3,
                    )
                    break
                raise ValueError(
                    f"{self.path}: line {number} is not a metrics record ({exc}); "
                    "fix or delete the line, then resume again"
                ) from exc
            records.append((line, record))
        return records

    def log(self, step: int, metrics: Mapping[str, float], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Write one step's metrics; returns the JSON record.

        Args:
            step: The step just finished.
            metrics: Scalars, written to ``metrics.jsonl`` and TensorBoard.
            extra: JSON-serialisable values written to ``metrics.jsonl`` only (e.g. the sample ids).
        """
        record: dict[str, Any] = {"step": step}
        record.update({short: float(metrics[key]) for short, key in SHORT_KEYS.items() if key in metrics})
        record.update({k: float(v) for k, v in metrics.items()})
        record.update(extra or {})
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            for key, value in metrics.items():
                self.writer.add_scalar(key, float(value), step)
        return record

    def log_replies(self, step: int, rows: Sequence[Mapping[str, Any]], limit: int = 8) -> None:
        """Add a markdown table of sample replies (sample id, reward, IoU, reply) to TensorBoard."""
        if not self.enabled or not rows:
            return
        lines = ["| sample_id | reward | iou | failure | reply |", "|---|---|---|---|---|"]
        for row in rows[:limit]:
            reply = str(row["reply"]).replace("|", "\\|").replace("\n", " ")[:400]
            failure = row.get("failure") or ""
            lines.append(f"| {row['sample_id']} | {row['reward']:.3f} | {row['iou']:.3f} | {failure} | {reply} |")
        self.writer.add_text("replies/samples", "\n".join(lines), step)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self.writer is not None:
            self.writer.close()

"""``grpo_refinement.py --verdict-samples``: final policies re-evaluated after training."""

from __future__ import annotations

import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import grpo_refinement as gr  # noqa: E402


def _read(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_verdicts_on_the_curves_samples_equal_its_last_point(tmp_path):
    gr.main(
        [
            "--seeds", "0", "--arms", "multi", "no-mask", "--steps", "1", "--warm-start-steps", "2",
            "--eval-every", "1", "--eval-samples", "3", "--segmenter", "grabcut", "--feedback", "text",
            "--keep-policies", "--out-dir", str(tmp_path),
        ]
    )  # fmt: skip
    # a later call on the run's folder: the setting comes from the CSV, not from this command line
    gr.main(["--report-only", "--verdict-samples", "3", "--out-dir", str(tmp_path)])
    rows = _read(tmp_path / "grpo_refinement.csv")
    finals = [r for r in rows if int(r["step"]) == 1]
    assert sorted(r["arm"] for r in finals) == ["multi", "no-mask"]
    for r in finals:
        assert float(r["verdict_n"]) == 3.0
        assert float(r["verdict_turn_1"]) == float(r["giou_turn_1"])
        assert float(r["verdict_last"]) == float(r["giou_last"])
    assert all(r["verdict_n"] == "" for r in rows if int(r["step"]) == 0)
    text = (tmp_path / "grpo_refinement.md").read_text()
    assert "Verdicts on more samples: each final policy re-evaluated on the first 3 val samples" in text
    assert text.count("- multi last turn > no-mask last turn: ") == 2  # the curve's goals and the verdicts'


def test_verdict_section_orders_arms_on_the_reevaluated_figures():
    final = {
        "multi": {0: {"giou_turn_1": 0.8, "giou_turn_2": 0.9, "verdict_n": 256.0, "verdict_turn_1": 0.8,
                      "verdict_last": 0.85}},
        "single": {0: {"giou_turn_1": 0.88, "giou_turn_2": 0.88, "verdict_n": 256.0, "verdict_turn_1": 0.87,
                       "verdict_last": 0.87}},
        "ablation": {0: {"giou_turn_1": 0.7, "giou_turn_2": 0.7}},  # kept no policy: no verdict
    }  # fmt: skip
    assert "- multi last turn > single turn 1: 1 of 1 seeds (met)" in gr.goal_lines(final, "giou_turn_1", "giou_turn_2")
    lines = gr.verdict_section(final)
    assert "| multi | 0 | 0.800 | 0.850 | +0.050 |" in lines
    assert "- multi last turn > single turn 1: 0 of 1 seeds (NOT met)" in lines
    assert "- multi last turn > ablation last turn: not measured (an arm not run or not re-evaluated)" in lines
    assert gr.verdict_section({"multi": {0: {"giou_turn_1": 0.8}}}) == []

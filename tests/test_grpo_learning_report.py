from benchmark_scripts import load_benchmark


def test_a_report_without_the_grpo_arm_makes_no_claim_about_its_policy(tmp_path):
    bench = load_benchmark("grpo_learning")
    curve = [(0, 0.2, 0.0), (25, 0.0, 1.0)]
    runs = {(0, "control", s): {"curve": curve, "step_s": 1.0} for s in (0, 1)}
    rows = [{"level": 0, "arm": "control", "seed": s, "step": t, "val_giou": g} for s in (0, 1) for t, g, _ in curve]
    bench.write_results(rows, runs, {0: {"constant_box": 0.213}}, tmp_path, "cmd", "setup")
    report = (tmp_path / "grpo_learning.md").read_text()
    assert "| control | 0.200 -> 0.000 (-0.200) | 0.200 -> 0.000 (-0.200) | -0.200 |" in report
    assert "nan" not in report and "Trained GRPO policy" not in report
    runs[(0, "grpo", 0)] = {"curve": [(0, 0.2, 0.0), (25, 0.4, 0.0)], "step_s": 1.0}
    bench.write_results(rows, runs, {0: {"constant_box": 0.213}}, tmp_path, "cmd", "setup")
    assert "Trained GRPO policy 0.400: above it" in (tmp_path / "grpo_learning.md").read_text()

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from segzero_env.answers import format_reply
from segzero_env.cli import main as segzero_main
from segzero_env.datasets import load
from segzero_env.evaluation import evaluate
from segzero_env.evaluation.cli import parse_kwargs
from segzero_env.evaluation.results import read_results
from segzero_env.evaluation.run_folder import RunConflictError, lock_run_folder
from segzero_env.policies.oracle import OraclePolicy

SHAPES = "ReasonSegShapes-v0"
SHAPES_KWARGS = {"segmenter": "box", "split": "val", "image_size": 112, "dataset_kwargs": {"size": 24, "level": 2}}


def comparable(metrics):
    """Metrics without the parts that legitimately differ between sessions."""
    return {k: v for k, v in metrics.items() if k not in ("timings", "policy_stats")}


def results_without_timings(out):
    records, _ = read_results(out / "results.jsonl")
    return sorted(({k: v for k, v in r.items() if k != "timings"} for r in records), key=lambda r: r["index"])


# ----------------------------------------------------------------------------- oracle and floors


def box_filling_metrics():
    """gIoU / cIoU of filling each sample's true box (tight extent of the target), computed here from scratch."""
    ds = load("shapes", split="val", **SHAPES_KWARGS["dataset_kwargs"])
    ious, inter_sum, union_sum = [], 0, 0
    for i in range(len(ds)):
        target = ds[i].mask == 1
        rows, cols = np.nonzero(target)
        filled = np.zeros_like(target)
        filled[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        inter, union = int((filled & target).sum()), int((filled | target).sum())
        ious.append(inter / union)
        inter_sum, union_sum = inter_sum + inter, union_sum + union
    return float(np.mean(ious)), inter_sum / union_sum, len(ds)


def test_oracle_with_box_segmenter_gives_box_filling_iou_and_floors_score_far_below(tmp_path):
    giou, ciou, n = box_filling_metrics()
    oracle = evaluate(SHAPES, SHAPES_KWARGS, "oracle", tmp_path / "oracle", batch_size=5, progress=False)
    assert oracle["n"] == n == 24
    assert oracle["giou"] == pytest.approx(giou, rel=1e-12) and oracle["ciou"] == pytest.approx(ciou, rel=1e-12)
    assert oracle["unusable_reply_rate"] == 0.0 and oracle["reward_terms_mean"]["box_iou"] == 1.0
    assert giou < 0.99  # shapes are not boxes, so the box segmenter's ceiling is below 1
    random = evaluate(SHAPES, SHAPES_KWARGS, "random", tmp_path / "random", batch_size=5, progress=False)
    full = evaluate(SHAPES, SHAPES_KWARGS, "full-image", tmp_path / "full", progress=False)
    assert random["n"] == full["n"] == 24
    assert random["giou"] < 0.3 * oracle["giou"] and full["giou"] < 0.3 * oracle["giou"]
    assert random["unusable_reply_rate"] == 0.0  # well-formed, just wrong


def test_batch_size_does_not_change_results(tmp_path):
    one = evaluate(SHAPES, SHAPES_KWARGS, "random", tmp_path / "b1", limit=7, progress=False)
    three = evaluate(SHAPES, SHAPES_KWARGS, "random", tmp_path / "b3", limit=7, batch_size=3, progress=False)
    assert comparable(one) == comparable(three)
    assert results_without_timings(tmp_path / "b1") == results_without_timings(tmp_path / "b3")


# ----------------------------------------------------------------------------- replay on a LISA-layout set

S = 120  # observation side; the image sizes below make every reply coordinate map to a whole pixel


def write_lisa_set(root):
    """Five images in ReasonSeg's layout with targets, ignore regions, a flag shape, short and long queries."""
    split = root / "val"
    split.mkdir(parents=True)

    def rect(x1, y1, x2, y2, label):
        return {"label": label, "points": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]}

    samples = {
        "a": (
            60,
            40,
            False,
            [rect(10, 5, 39, 29, "target"), rect(30, 10, 35, 15, "ignore"), rect(0, 0, 59, 39, "flag")],
        ),
        "b": (40, 60, True, [rect(0, 0, 19, 19, "target"), rect(25, 40, 39, 59, "Ignore region")]),
        "c": (60, 60, True, [rect(30, 30, 49, 49, "target")]),
        "d": (60, 60, False, [rect(0, 0, 9, 9, "target")]),
        "e": (60, 60, False, [rect(30, 30, 49, 49, "target")]),
    }
    rng = np.random.default_rng(0)
    for stem, (w, h, long, shapes) in samples.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(split / f"{stem}.jpg")
        text = f"What in picture {stem} would you sit on, and why?" if long else f"object {stem}"
        payload = {"text": [text, "another phrasing"], "is_sentence": long, "shapes": shapes}
        (split / f"{stem}.json").write_text(json.dumps(payload), encoding="utf-8")


def hand_metrics():
    """The expected numbers, from masks built by slicing and LISA's rule written out."""

    def iou_counts(gt, pred):
        valid = gt != 255
        target = gt == 1
        return int((pred & target & valid).sum()), int(((pred | target) & valid).sum())

    a = np.zeros((40, 60), np.uint8)
    a[5:30, 10:40] = 1
    a[10:16, 30:36] = 255
    pa = np.zeros_like(a, bool)
    pa[5:31, 10:46] = True  # reply (20, 15, 90, 90) -> (10, 5, 45, 30)
    b = np.zeros((60, 40), np.uint8)
    b[0:20, 0:20] = 1
    b[40:60, 25:40] = 255
    pb = np.ones_like(b, bool)  # reply covering the whole frame
    c = np.zeros((60, 60), np.uint8)
    c[30:50, 30:50] = 1
    d = np.zeros((60, 60), np.uint8)
    d[0:10, 0:10] = 1
    counts = {
        "a": iou_counts(a, pa),
        "b": iou_counts(b, pb),
        "c": iou_counts(c, np.zeros_like(c, bool)),  # unparseable reply
        "d": iou_counts(d, np.zeros_like(d, bool)),  # no reply in the file
        "e": iou_counts(c, c == 1),  # the exact box
    }
    assert counts["a"] == (714, 900) and counts["b"] == (400, 2100)  # sanity of the hand numbers

    def metrics(ids):
        ious = [counts[k][0] / counts[k][1] for k in ids]
        return np.mean(ious), sum(counts[k][0] for k in ids) / sum(counts[k][1] for k in ids), len(ids)

    return {"all": metrics("abcde"), "short": metrics("ade"), "long": metrics("bc")}


def write_replies(path):
    lines = [
        {"sample_id": "a", "reply": format_reply(box=(20, 15, 90, 90), points=[(30, 30), (40, 40)])},
        {"sample_id": "b", "reply": format_reply(box=(0, 0, 117, 118), points=[(5, 5), (9, 9)])},
        {"sample_id": "c", "reply": "I think it is the chair."},
        {"sample_id": "e", "reply": format_reply(box=(60, 60, 98, 98), points=[(70, 70), (80, 80)])},
        {"sample_id": "not-in-the-set", "reply": "ignored"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


LISA_ENV = ["segmenter=box", "segmenter_kwargs={}", "split=val", f"image_size={S}"]


def test_score_reproduces_hand_metrics_on_lisa_layout(tmp_path, capsys):
    write_lisa_set(tmp_path / "data")
    replies = tmp_path / "replies.jsonl"
    write_replies(replies)
    out = tmp_path / "run"
    status = segzero_main(
        [
            "score",
            "--env",
            "ReasonSeg-v0",
            "--env-kwargs",
            *LISA_ENV,
            f"data_root={tmp_path / 'data'}",
            "--replies",
            str(replies),
            "--out",
            str(out),
            "--no-progress",
            "--whole-split",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "missing from" in printed and ": 1 (scored as unusable)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    expected = hand_metrics()
    giou, ciou, n = expected["all"]
    assert metrics["n"] == n and metrics["giou"] == pytest.approx(giou) and metrics["ciou"] == pytest.approx(ciou)
    for kind in ("short", "long"):
        giou, ciou, n = expected[kind]
        assert metrics[kind] == {"giou": pytest.approx(giou), "ciou": pytest.approx(ciou), "n": n, "n_skipped": 0}
    assert metrics["unusable_replies"] == 2 and metrics["unusable_reply_rate"] == pytest.approx(2 / 5)
    assert metrics["empty_replies"] == 1 and metrics["policy_stats"]["missing_replies"] == 1
    assert metrics["metric_definition"] == "lisa"
    records, _ = read_results(out / "results.jsonl")
    by_id = {r["sample_id"]: r for r in records}
    assert [r["sample_id"] for r in records] == list("abcde")
    assert by_id["a"]["query_kind"] == "short" and by_id["b"]["query_kind"] == "long"
    assert by_id["b"]["query"].startswith("What in picture b")  # the first text is the query
    assert (by_id["a"]["intersection"], by_id["a"]["union"]) == (714, 900)
    assert by_id["c"]["parse_failure"] == "no_answer_tag" and by_id["d"]["parse_failure"] == "empty"
    assert by_id["e"]["iou"] == 1.0 and by_id["e"]["answer"]["objects"][0]["box"] == [60.0, 60.0, 98.0, 98.0]
    for record in records:
        assert set(record) >= {"reply", "reward", "reward_terms", "timings", "iou", "parse_failure"}
        assert "mask_iou" in record["reward_terms"]


def test_seg_zero_definition_counts_ignore_as_target(tmp_path):
    write_lisa_set(tmp_path / "data")
    replies = tmp_path / "replies.jsonl"
    write_replies(replies)
    kwargs = parse_kwargs(LISA_ENV) | {"data_root": str(tmp_path / "data")}
    metrics = evaluate(
        "ReasonSeg-v0",
        kwargs,
        "replay",
        tmp_path / "sz",
        policy_kwargs={"replies": str(replies)},
        metric_definition="seg-zero",
        limit=2,
        progress=False,
    )
    # a: ignore pixels are target now: I = 750, U = 936; b: I = 400 + 300, U = 2400
    assert metrics["n"] == 2 and metrics["giou"] == pytest.approx((750 / 936 + 700 / 2400) / 2)
    assert metrics["ciou"] == pytest.approx((750 + 700) / (936 + 2400))


# ----------------------------------------------------------------------------- resume


class FlakyOracle(OraclePolicy):
    """The oracle, except that it raises once it has answered ``fail_after`` samples."""

    def __init__(self, fail_after=None):
        super().__init__()
        self.fail_after = fail_after
        self.answered = 0

    def act(self, observations, infos):
        if self.fail_after is not None and self.answered + len(observations) > self.fail_after:
            raise RuntimeError("simulated crash")
        self.answered += len(observations)
        return super().act(observations, infos)


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path):
    kwargs = dict(batch_size=3, limit=11, save_overlays=2, progress=False)
    reference = evaluate(SHAPES, SHAPES_KWARGS, FlakyOracle(), tmp_path / "ref", **kwargs)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate(SHAPES, SHAPES_KWARGS, FlakyOracle(fail_after=6), out, **kwargs)
    assert len(read_results(out / "results.jsonl")[0]) == 6
    with pytest.raises(FileExistsError, match="--resume"):
        evaluate(SHAPES, SHAPES_KWARGS, FlakyOracle(), out, **kwargs)
    resumed = evaluate(SHAPES, SHAPES_KWARGS, FlakyOracle(), out, resume=True, **kwargs)
    assert resumed["timings"]["scored_this_session"] == 5
    assert comparable(resumed) == comparable(reference)
    assert results_without_timings(out) == results_without_timings(tmp_path / "ref")
    again = evaluate(SHAPES, SHAPES_KWARGS, FlakyOracle(), out, resume=True, **kwargs)  # nothing left to do
    assert again["timings"]["scored_this_session"] == 0 and comparable(again) == comparable(reference)
    assert len((out / "results.jsonl").read_text().splitlines()) == 11
    assert len(list((out / "overlays").glob("*.png"))) == 2 and (out / "iou_histogram.png").stat().st_size > 0


def test_resume_refuses_different_settings(tmp_path):
    evaluate(SHAPES, SHAPES_KWARGS, "random", tmp_path, limit=2, progress=False)
    with pytest.raises(ValueError, match="policy: was 'random', now 'oracle'"):
        evaluate(SHAPES, SHAPES_KWARGS, "oracle", tmp_path, limit=2, resume=True, progress=False)
    with pytest.raises(ValueError, match="env_kwargs"):
        evaluate(SHAPES, {**SHAPES_KWARGS, "image_size": 56}, "random", tmp_path, limit=2, resume=True, progress=False)
    # a larger limit extends the same run
    more = evaluate(SHAPES, SHAPES_KWARGS, "random", tmp_path, limit=4, resume=True, progress=False)
    assert more["n"] == 4 and more["timings"]["scored_this_session"] == 2


SLOW_POLICY = """
import time
from segzero_env.policies.oracle import OraclePolicy


class SlowOracle(OraclePolicy):
    def __init__(self, delay=0.0):
        super().__init__()
        self.delay = delay

    def act(self, observations, infos):
        time.sleep(self.delay)
        return super().act(observations, infos)
"""


def test_resume_compares_resolved_settings_and_needs_run_json(tmp_path):
    kwargs = {"limit": 2, "progress": False}
    evaluate(SHAPES, SHAPES_KWARGS, "oracle", tmp_path, **kwargs)
    # spelling out defaults (the env's image size, the env id's own segmenter, the policy's) is the same run
    spelled = {**SHAPES_KWARGS, "reward": "mask-iou", "prompt_template": "seg-zero", "max_turns": 1}
    same = evaluate(SHAPES, spelled, "oracle", tmp_path, resume=True, limit=3, progress=False)
    assert same["n"] == 3
    with pytest.raises(RunConflictError, match=r"env_kwargs.reward: was 'mask-iou', now 'seg-zero'"):
        evaluate(SHAPES, {**SHAPES_KWARGS, "reward": "seg-zero"}, "oracle", tmp_path, resume=True, **kwargs)
    (tmp_path / "run.json").unlink()
    with pytest.raises(RunConflictError, match="run.json is missing"):
        evaluate(SHAPES, {**SHAPES_KWARGS, "reward": "seg-zero"}, "oracle", tmp_path, resume=True, **kwargs)
    # --resume on an empty folder starts the run
    fresh = evaluate(SHAPES, SHAPES_KWARGS, "oracle", tmp_path / "fresh", resume=True, **kwargs)
    assert fresh["n"] == 2


def test_default_image_size_spelled_out_resumes(tmp_path):
    kwargs = {"segmenter": "box", "split": "val", "dataset_kwargs": {"size": 2, "level": 0}}
    evaluate(SHAPES, kwargs, "full-image", tmp_path, limit=1, progress=False)
    resumed = evaluate(SHAPES, {**kwargs, "image_size": 840}, "full-image", tmp_path, resume=True, progress=False)
    assert resumed["n"] == 2


def test_a_held_folder_is_refused_and_free_again_after(tmp_path):
    with lock_run_folder(tmp_path):
        with pytest.raises(RunConflictError, match=f"{tmp_path} is being written by another run"):
            evaluate(SHAPES, SHAPES_KWARGS, "oracle", tmp_path, limit=1, progress=False)
        assert not (tmp_path / "results.jsonl").exists()
    assert evaluate(SHAPES, SHAPES_KWARGS, "oracle", tmp_path, limit=1, progress=False)["n"] == 1


def test_resume_after_the_process_is_killed(tmp_path, monkeypatch, capsys):
    (tmp_path / "slow_policy.py").write_text(SLOW_POLICY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "killed"
    args = [
        "eval",
        "--env",
        SHAPES,
        "--env-kwargs",
        "segmenter=box",
        "split=val",
        "image_size=112",
        'dataset_kwargs={"size": 24, "level": 2}',
        "--policy",
        "slow_policy:SlowOracle",
        "--allow-code",
        "--policy-kwargs",
        "delay=0.15",
        "--limit",
        "12",
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "segzero_env.cli", *args, "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and len(results.read_bytes().splitlines()) >= 4:
                break
            time.sleep(0.02)
        # a second writer on the same folder, while the first one runs, is refused
        assert segzero_main([*args, "--out", str(out), "--resume"]) == 1
        assert f"{out} is being written by another run (pid {proc.pid}" in capsys.readouterr().err
        assert proc.poll() is None
    finally:
        proc.kill()
        _, stderr = proc.communicate(timeout=30)
    n_before = len(read_results(results)[0])
    assert 4 <= n_before < 12, stderr.decode()[-2000:]
    with results.open("a", encoding="utf-8") as handle:
        handle.write('{"index": 99, "sample_id": "torn')  # as if killed in the middle of a write
    assert segzero_main([*args, "--out", str(out), "--resume"]) == 0
    assert segzero_main([*args, "--out", str(tmp_path / "straight")]) == 0
    ids = [r["sample_id"] for r in read_results(results)[0]]
    assert len(ids) == len(set(ids)) == 12
    killed = json.loads((out / "metrics.json").read_text())
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert comparable(killed) == comparable(straight)
    assert killed["timings"]["scored_this_session"] == 12 - n_before


def test_parse_kwargs_errors():
    with pytest.raises(ValueError, match="--env-kwargs: 'split' is not key=value"):
        parse_kwargs(["split"])
    assert parse_kwargs(["a=true", "b=null", "c=[1, 2]", "d=hello world"]) == {
        "a": True,
        "b": None,
        "c": [1, 2],
        "d": "hello world",
    }


def test_cli_reports_user_errors_in_one_line(tmp_path, capsys):
    args = [
        "eval",
        "--env",
        SHAPES,
        "--env-kwargs",
        "segmenter=box",
        "split=val",
        "image_size=56",
        'dataset_kwargs={"size": 2}',
        "--policy",
        "full-image",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    assert segzero_main(args) == 0
    assert segzero_main(args) == 1
    assert "already holds results" in capsys.readouterr().err
    score = ["score", *args[1:7], "--replies", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "s")]
    assert segzero_main(score) == 1
    assert "not found" in capsys.readouterr().err


class OracleThenStop(OraclePolicy):
    """Multi-turn: the oracle answer first; then samples with an even id stop, odd ones repeat the answer."""

    def act_one(self, observation, info):
        from segzero_env.answers import format_refinement

        if info.get("turn", 0) >= 1 and int(info["sample_id"][-1]) % 2 == 0:
            return format_refinement(stop=True)
        return super().act_one(observation, info)


def test_multi_turn_episodes_play_to_the_end(tmp_path):
    single = evaluate(SHAPES, SHAPES_KWARGS, "oracle", tmp_path / "single", limit=7, progress=False)
    kwargs = {**SHAPES_KWARGS, "max_turns": 3}
    multi = evaluate(SHAPES, kwargs, OracleThenStop(), tmp_path / "multi", limit=7, batch_size=4, progress=False)
    assert multi["n"] == 7 and multi["giou"] == pytest.approx(single["giou"])
    for record in read_results(tmp_path / "multi" / "results.jsonl")[0]:
        expected_turns = 2 if int(record["sample_id"][-1]) % 2 == 0 else 3
        assert record["turns"] == expected_turns and len(record["replies"]) == expected_turns
        assert record["iou"] == pytest.approx(record["env_iou"])

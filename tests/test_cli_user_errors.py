"""The ``segzero`` command answers a user's mistake in one line that names the argument."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gymnasium as gym
import pytest

import segzero_env  # noqa: F401
from segzero_env.cli import main
from segzero_env.datasets.errors import DatasetError
from segzero_env.evaluation.cli_names import registered_names
from segzero_env.policies import base as policy_base

SHAPES = ["--env", "ReasonSegShapes-v0", "--no-progress", "--limit", "1"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class MyPolicy(policy_base.PolicyBase):
    """A policy a user registers under a new name."""

    def act_one(self, observation, info):
        return ""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--policy", "oracel"], ["--policy 'oracel' is not a policy", "did you mean 'oracle'?"]),
        (["--policy", "oracle", "--env-kwargs", "segmenter=boxx"], ["--env-kwargs segmenter='boxx'", "'box'?"]),
        (["--policy", "oracle", "--env-kwargs", "reward=mask-iuo"], ["--env-kwargs reward='mask-iuo'", "mask-iou"]),
        (["--policy", "oracle", "--env-kwargs", "image_size=abc"], ["image_size must be a whole number", "'abc'"]),
        (
            ["--policy", "oracle", "--env-kwargs", "dataset_kwargs={level:3}"],
            ["--env-kwargs dataset_kwargs: '{level:3}' is not JSON", """dataset_kwargs='{"level": 3}'"""],
        ),
        (["--policy", "oracle", "--env-kwargs", "imagesize=64"], ["--env-kwargs imagesize", "'image_size'?"]),
        (["--policy", "oracle", "--policy-kwargs", "seed"], ["--policy-kwargs: 'seed' is not key=value"]),
    ],
)
def test_a_mistake_is_one_line_naming_the_argument(extra, expected, tmp_path, capsys):
    code, out, err = run(["eval", *SHAPES, "--out", str(tmp_path / "run"), *extra], capsys)
    assert code == 1 and "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("segzero eval: error: ")
    for text in expected:
        assert text in err


def test_a_missing_model_fails_fast_without_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["eval", *SHAPES, "--out", str(tmp_path / "run"), "--env-kwargs", "segmenter=box"]
    code, _, err = run([*argv, "--policy", "hf", "--policy-kwargs", "model=/missing/path"], capsys)
    assert code == 1 and "Traceback" not in err
    # the first line says what is missing; the lines after it list the places tried and the fixes
    assert err.splitlines()[0] == "segzero eval: error: hf policy model '/missing/path' not found. Tried, in order:"


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(ValueError, match="is not a policy"):
        main(["eval", *SHAPES, "--out", str(tmp_path / "run"), "--policy", "oracel", "--debug"])


def test_eval_help_lists_every_registered_policy_and_segmenter(capsys, monkeypatch):
    monkeypatch.setitem(policy_base._REGISTRY, "my-policy", MyPolicy)
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = re.sub(r"-\s+", "-", " ".join(capsys.readouterr().out.split()))  # argparse wraps at hyphens
    names = registered_names()
    assert "my-policy" in names["policy"] and {"oracle-refine", "hf"} <= set(names["policy"])
    assert "hf-sam2" in names["segmenter"]
    for name in names["policy"] + names["segmenter"] + names["reward"]:
        assert name in text, name


def write_replies(path: Path, ids: list[str]) -> None:
    path.write_text("".join(json.dumps({"sample_id": sid, "reply": "<answer>{}</answer>"}) + "\n" for sid in ids))


def test_score_scores_the_ids_of_the_replies_file_unless_asked_for_the_whole_split(tmp_path, capsys):
    ids = list(gym.make("ReasonSegShapes-v0", segmenter="box").unwrapped.dataset.sample_ids[:40])
    chosen = [ids[30], ids[10], ids[20]]
    replies = tmp_path / "replies.jsonl"
    write_replies(replies, chosen)
    common = ["score", "--env", "ReasonSegShapes-v0", "--env-kwargs", "segmenter=box", "image_size=64"]
    common += ["--replies", str(replies), "--no-progress"]
    code, out, _ = run([*common, "--out", str(tmp_path / "ids")], capsys)
    scored = [json.loads(line)["sample_id"] for line in (tmp_path / "ids" / "results.jsonl").read_text().splitlines()]
    assert code == 0 and scored == [ids[10], ids[20], ids[30]] and "missing" not in out
    code, out, _ = run([*common, "--whole-split", "--limit", "5", "--out", str(tmp_path / "split")], capsys)
    scored = [json.loads(line)["sample_id"] for line in (tmp_path / "split" / "results.jsonl").read_text().splitlines()]
    assert code == 0 and scored == ids[:5] and "replies missing" in out and ": 5 (scored as unusable)" in out
    write_replies(replies, [ids[0], "no-such-sample"])  # one id from elsewhere: left out, and said so
    code, out, _ = run([*common, "--out", str(tmp_path / "extra")], capsys)
    assert code == 0 and "left out 1 sample ids that are not in this split (first: 'no-such-sample')" in out
    write_replies(replies, ["no-such-sample"])  # none of this split: the wrong split, an error
    code, _, err = run([*common, "--out", str(tmp_path / "bad")], capsys)
    assert code == 1 and "none of the 1 sample ids asked for is in ReasonSegShapes-v0 split 'train'" in err


def test_empty_splits_are_an_error_with_the_expected_layout(tmp_path, capsys):
    for split in ("train", "val", "test"):
        (tmp_path / split).mkdir()
    code, out, _ = run(["data", "check", str(tmp_path), "--dataset", "reasonseg"], capsys)
    assert code == 2
    assert f"error: {tmp_path / 'val'}: holds no reasonseg samples for split 'val'; expected layout: " in out
    assert "{train,val,test}/<name>.jpg beside <name>.json" in out
    with pytest.raises(DatasetError, match=r"/val: holds no reasonseg samples .*expected layout"):
        gym.make("ReasonSeg-v0", data_root=str(tmp_path), segmenter="box")

"""The verl adapter, called the way verl's reward manager calls a custom compute_score."""

import importlib.util
import json

import pytest

import segzero_env.integrations.verl as verl_module
from segzero_env.answers import format_reply

ENV = {"image_size": 56, "segmenter": "box"}


@pytest.fixture(scope="module")
def rows():
    return verl_module.build_verl_dataset("ReasonSegShapes-v0", split="train", limit=3, **ENV)


def _load_like_verl():
    # verl imports the file given in custom_reward_function.path and takes the named function
    spec = importlib.util.spec_from_file_location("custom_module", verl_module.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compute_score


def test_rows_have_verl_columns(rows, tmp_path):
    row = rows[0]
    assert row["prompt"][1]["content"].startswith("<image>")
    assert row["reward_model"]["ground_truth"] == row["extra_info"]["sample_id"]
    assert json.loads(row["extra_info"]["env_kwargs"])["image_size"] == 56
    rows.to_parquet(str(tmp_path / "train.parquet"))
    assert (tmp_path / "train.parquet").stat().st_size > 0


def test_compute_score_as_verl_calls_it(rows):
    compute_score = _load_like_verl()
    row = rows[0]
    from segzero_env.integrations.trl import EnvScorer

    env = EnvScorer("ReasonSegShapes-v0", **ENV).env
    _, info = env.reset(options={"sample_id": row["reward_model"]["ground_truth"]})
    good = format_reply(box=info["gt_box"], points=info["gt_points"])
    kwargs = {
        "data_source": row["data_source"],
        "ground_truth": row["reward_model"]["ground_truth"],
        "extra_info": row["extra_info"],
    }
    scored = compute_score(solution_str=good, **kwargs)
    bad = compute_score(solution_str="I do not know", **kwargs)
    assert set(scored) >= {"score", "think_format", "answer_format", "mask_iou"}
    assert all(isinstance(v, float) for v in scored.values())
    assert scored["score"] > bad["score"] == 0.0
    assert scored["think_format"] == 1.0 and bad["think_format"] == 0.0


def test_compute_score_rejects_missing_sample_id():
    with pytest.raises(ValueError, match="sample id"):
        verl_module.compute_score("x", "reply", None, {"env_kwargs": ENV})

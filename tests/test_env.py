import inspect
import re
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import segzero_env  # noqa: F401
from segzero_env.answers import format_reply
from segzero_env.envs.reasonseg_env import ReasonSegEnv
from segzero_env.rewards import TERM_NAMES
from segzero_env.types import ObjectAnswer

SMALL = {"image_size": 112, "segmenter": "box"}


def make(**kwargs):
    return gym.make("ReasonSegShapes-v0", **{**SMALL, **kwargs})


def check_env_without_warnings(env):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    assert caught == [], [str(w.message) for w in caught]


def test_check_env_passes_without_warnings():
    check_env_without_warnings(make(render_mode="rgb_array"))


def test_check_env_passes_on_reasonseg_v0(tmp_path):
    from dataset_writers import rect, write_reasonseg_item

    write_reasonseg_item(tmp_path / "val", "a", (60, 90), [rect("target", 10, 10, 40, 30)], texts=["the box"])
    write_reasonseg_item(tmp_path / "val", "b", (70, 50), [rect("target", 5, 5, 20, 20)], is_sentence=True, seed=2)
    env = gym.make(
        "ReasonSeg-v0", data_root=str(tmp_path), split="val", segmenter="box", image_size=112, render_mode="rgb_array"
    )
    check_env_without_warnings(env)


def test_check_env_default_grabcut_segmenter():
    env = gym.make("ReasonSegShapes-v0", image_size=112)
    check_env(env.unwrapped)


def test_import_is_light_and_make_imports_package():
    code = "import sys, segzero_env; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"
    code = (
        "import gymnasium as gym; e = gym.make('segzero_env:ReasonSegShapes-v0', image_size=56, segmenter='box');"
        " print(e.reset(seed=0)[1]['sample_id'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("shapes")


def test_reset_is_seeded_and_accepts_sample_id():
    env = make()
    obs1, info1 = env.reset(seed=3)
    obs2, info2 = env.reset(seed=3)
    assert info1["sample_id"] == info2["sample_id"]
    np.testing.assert_array_equal(obs1["image"], obs2["image"])
    obs3, info3 = env.reset(options={"sample_id": info1["sample_id"]})
    assert info3["sample_id"] == info1["sample_id"]
    assert obs1["image"].shape == (112, 112, 3) and obs1["image"].dtype == np.uint8
    assert env.observation_space.contains(obs1)
    assert "{query}" not in info1["prompt"] and info1["query"].lower().rstrip(".") in info1["prompt"]
    with pytest.raises(KeyError):
        env.reset(options={"sample_id": "no-such-sample"})


def test_single_turn_episode_and_never_raises_on_garbage():
    env = make()
    env.reset(seed=0)
    lo, hi = env.unwrapped.preset.reward_range
    for reply in ["", "\x00" * 10, "é" * 1000, "<answer>{}</answer>", "<answer>" * 5000, "x" * 2_000_000, None, 42]:
        env.reset(seed=1)
        _, reward, terminated, truncated, info = env.step(reply)
        assert terminated and not truncated
        assert lo <= reward <= hi
        assert info["parse_failure"] is not None
        assert info["reward_terms"]["answer_format"] == 0.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step("again")


def test_reply_coordinates_map_to_original_frame():
    env = make()
    _, info = env.reset(seed=5)
    sample = env.unwrapped.current_sample
    h, w = sample.height, sample.width
    s = info["image_size"]
    reply = format_reply([ObjectAnswer(box=(10.0, 20.0, 50.0, 60.0), points=((30.0, 40.0), (31.0, 41.0)))])
    _, _, _, _, step_info = env.step(reply)
    pred = env.unwrapped.last_pred_mask
    assert pred.shape == (h, w)
    ys, xs = np.nonzero(pred)
    # x * W / S rounded half up, as documented.
    assert xs.min() == int(np.floor(10 * w / s + 0.5)) and xs.max() == int(np.floor(50 * w / s + 0.5))
    assert ys.min() == int(np.floor(20 * h / s + 0.5)) and ys.max() == int(np.floor(60 * h / s + 0.5))
    assert step_info["answer"]["schema"] == "seg-zero"


def test_info_answer_tells_the_empty_answer_from_an_unreadable_one():
    env = make()
    answers = []
    for reply in ("<think>none</think><answer>[]</answer>", "<answer>[1]</answer>", "no answer"):
        env.reset(seed=5)
        answers.append(env.step(reply)[4]["answer"])
    assert answers[0] == {"schema": "vision-reasoner", "no_object": True, "objects": []}
    assert answers[1] == answers[2] == {"schema": None, "no_object": False, "objects": []}


def test_oracle_box_reply_scores_box_fill_iou():
    env = make()
    _, info = env.reset(seed=2)
    sample = env.unwrapped.current_sample
    reply = format_reply([ObjectAnswer(box=tuple(info["gt_box"]), points=tuple(map(tuple, info["gt_points"])))])
    _, reward, _, _, step_info = env.step(reply)
    gt = sample.mask == 1
    ys, xs = np.nonzero(gt)
    box_fill = np.zeros_like(gt)
    box_fill[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    expected = (box_fill & gt).sum() / (box_fill | gt).sum()
    assert step_info["iou"] == pytest.approx(expected, abs=0.02)
    assert step_info["reward_terms"]["think_format"] == 1.0 and step_info["reward_terms"]["answer_format"] == 1.0
    assert reward == pytest.approx(2.0 + step_info["reward_terms"]["mask_iou"])


def test_docstring_documents_every_info_key_term_and_argument():
    env = make()
    _, reset_info = env.reset(seed=0)
    _, _, _, _, step_info = env.step("<think>x</think><answer>{}</answer>")
    doc = ReasonSegEnv.__doc__
    for key in set(reset_info) | set(step_info):
        assert f"``{key}``" in doc, f"info key {key!r} is not documented"
    for term in TERM_NAMES:
        assert f"| {term} |" in doc, f"reward term {term!r} is not documented"
    for name in inspect.signature(ReasonSegEnv.__init__).parameters:
        if name != "self":
            assert f"``{name}``" in doc, f"argument {name!r} is not documented"
    for section in [
        "Description",
        "Action Space",
        "Observation Space",
        "Rewards",
        "Starting State",
        "Episode End",
        "Arguments",
        "Version History",
    ]:
        assert re.search(rf"## {section}\n", doc)


def test_render_rgb_array():
    env = make(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.dtype == np.uint8
    env.step("nothing")
    assert env.render().shape[2] == 3


def test_reward_preset_and_weights_pass_through():
    env = make(reward="seg-zero", reward_weights={"points": 2.0})
    assert env.unwrapped.preset.weights["points"] == 2.0
    with pytest.raises(ValueError):
        make(reward_weights={"no_such_term": 1.0})


def test_reasonseg_without_data_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGZERO_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(Exception) as excinfo:
        gym.make("ReasonSeg-v0", segmenter="box")
    message = str(excinfo.value)
    assert "nowhere" in message and "data_root" in message


def test_answer_format_follows_the_prompt_templates_schema():
    from segzero_env.types import AnswerSchema

    obj = ObjectAnswer(box=(10.0, 20.0, 50.0, 60.0), points=((30.0, 40.0),))
    vr_reply = format_reply([obj], schema=AnswerSchema.VISION_REASONER)
    seg_zero_reply = format_reply([ObjectAnswer(box=obj.box, points=((30.0, 40.0), (31.0, 41.0)))])
    vr_env = make(prompt_template="vision-reasoner")
    sz_env = make()
    for env, good, bad in [(vr_env, vr_reply, seg_zero_reply), (sz_env, seg_zero_reply, vr_reply)]:
        env.reset(seed=0)
        assert env.step(good)[4]["reward_terms"]["answer_format"] == 1.0
        env.reset(seed=0)
        assert env.step(bad)[4]["reward_terms"]["answer_format"] == 0.0

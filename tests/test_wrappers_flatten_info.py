import gymnasium as gym

import segzero_env  # noqa: F401
from segzero_env.answers import format_reply
from segzero_env.rewards import TERM_NAMES
from segzero_env.wrappers import FlattenInfo


def test_flat_keys_mirror_the_nested_terms():
    env = FlattenInfo(gym.make("ReasonSegShapes-v0", image_size=64, segmenter="box"))
    assert env.info_keywords()[:2] == ("iou", "parse_failed")
    assert len(env.info_keywords()) == 2 + len(TERM_NAMES)
    _, info = env.reset(seed=0)
    _, reward, _, _, info = env.step(format_reply(box=info["gt_box"], points=info["gt_points"]))
    assert info["parse_failed"] == 0.0 and info["iou"] > 0.5
    for name, value in info["reward_terms"].items():
        assert info[f"reward_term_{name}"] == value
    assert set(env.info_keywords()) <= set(info)
    weighted = sum(info["reward_weights"][n] * info[f"reward_term_{n}"] for n in info["reward_terms"])
    assert abs(weighted - reward) < 1e-6


def test_parse_failure_is_flagged():
    env = FlattenInfo(gym.make("ReasonSegShapes-v0", image_size=64, segmenter="box"), prefix="r/")
    env.reset(seed=0)
    _, _, _, _, info = env.step("<answer>oops")
    assert info["parse_failed"] == 1.0 and info["iou"] == 0.0 and "r/think_format" in info

"""The real-data gym ids run reset / step on data written in their on-disk formats."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from dataset_writers import make_ref, noise_image, rect, write_reasonseg_item, write_refer, write_segzero_train

import segzero_env  # noqa: F401 - registers the ids
from segzero_env.answers import format_reply

# 84 x 84 originals: the 840 observation frame is exactly 10x, so replies map back without rounding.
TARGET_REPLY = format_reply(box=(100, 100, 400, 300), points=((200, 200), (300, 250)))


def test_reasonseg_v0_scores_the_lisa_mask(tmp_path: Path) -> None:
    shapes = [rect("target", 10, 10, 40, 30), rect("ignore", 20, 20, 25, 25), rect("flag", 0, 0, 80, 80)]
    write_reasonseg_item(tmp_path / "val", "img_1", (84, 84), shapes, texts=["the box"], is_sentence=True)
    write_reasonseg_item(tmp_path / "val", "img_2", (84, 84), [rect("target", 50, 50, 60, 60)], seed=3)
    env = gym.make("ReasonSeg-v0", data_root=str(tmp_path), split="val", segmenter="box")
    _, info = env.reset(seed=0, options={"sample_id": "img_1"})
    assert info["sample_id"] == "img_1" and info["query_kind"] == "long" and info["orig_width"] == 84
    mask = env.unwrapped.current_sample.mask
    assert (mask == 255).sum() == 36 and (mask == 1).sum() == 31 * 21 - 36
    _, reward, terminated, truncated, info = env.step(TARGET_REPLY)
    # The filled box is exactly the target; the ignore pixels leave both sides of the IoU.
    assert terminated and not truncated and info["iou"] == pytest.approx(1.0)
    assert reward == pytest.approx(sum(info["reward_weights"][k] * v for k, v in info["reward_terms"].items()))
    env.reset(options={"sample_id": "img_2"})
    assert env.step(TARGET_REPLY)[4]["iou"] == 0.0
    env.close()


def test_refcocog_v0_runs_on_the_refer_layout(tmp_path: Path) -> None:
    ann = {"id": 7, "image_id": 3, "category_id": 1, "bbox": [10, 10, 31, 21]}
    ann["segmentation"] = [[10, 10, 41, 10, 41, 31, 10, 31]]
    write_refer(tmp_path, "refcocog", "umd", [make_ref(5, 7, 3, "val", ["the box"])], {3: (84, 84)}, [ann])
    env = gym.make("RefCOCOg-v0", data_root=str(tmp_path), segmenter="box")
    _, info = env.reset(seed=1)
    assert info["sample_id"] == "5_50" and info["query"] == "the box"
    assert env.step(TARGET_REPLY)[4]["iou"] == pytest.approx(1.0)
    env.close()


def test_refcocog9k_v0_rewards_box_and_points_without_a_mask(tmp_path: Path) -> None:
    solution = "<box>(100,100),(400,300)</box><points>(200,200),(300,250)</points>"
    write_segzero_train(tmp_path / "train9k", ["s0"], ["the box"], [solution], [noise_image(840, 840)], [(84, 84)])
    env = gym.make(
        "RefCOCOg9k-v0",
        data_root=str(tmp_path / "train9k"),
        segmenter="box",
        dataset_kwargs={"cache_dir": str(tmp_path / "cache")},
    )
    _, info = env.reset(seed=0)
    assert env.unwrapped.current_sample.mask is None
    assert info["gt_box"] == [100.0, 100.0, 400.0, 300.0]
    _, reward, _, _, info = env.step(TARGET_REPLY)
    assert info["reward_preset"] == "seg-zero" and reward == pytest.approx(5.0)
    far = format_reply(box=(600, 600, 800, 800), points=((700, 700), (750, 750)))
    env.reset(seed=0)
    _, reward, _, _, info = env.step(far)
    assert reward == pytest.approx(2.0) and info["reward_terms"]["box_iou"] == 0.0
    assert np.isfinite(reward)
    env.close()

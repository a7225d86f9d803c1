import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import segzero_env  # noqa: F401
from segzero_env.answers import format_refinement, format_reply
from segzero_env.envs.reasonseg_env import ReasonSegEnv
from segzero_env.parsing import parse_reply
from segzero_env.policies import make_policy
from segzero_env.policies.oracle_refine import error_click
from segzero_env.segmenters.grabcut import GrabCutSegmenter
from segzero_env.types import AnswerSchema, FailureReason

NO_FORMAT = {"think_format": 0.0, "answer_format": 0.0}


def make(**kwargs):
    return gym.make("ReasonSegShapes-v0", **{"image_size": 112, "segmenter": "box", "max_turns": 3, **kwargs})


def oracle_reply(info):
    return format_reply(box=info["gt_box"], points=info["gt_points"])


class RecordingGrabCut(GrabCutSegmenter):
    """The real GrabCut segmenter, keeping every request it was given."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.requests = []

    def segment_many(self, requests):
        self.requests.append(list(requests))
        return super().segment_many(requests)


# -- grammar ------------------------------------------------------------------------------------


def test_parser_reads_refinement_grammar():
    body = '{"positive_points": [[1, 2]], "negative_points": [[3, 4], [5, 6]]}'
    r = parse_reply(f"<think>x</think><answer>{body}</answer>")
    assert r.failure is None and r.schema is AnswerSchema.REFINE and not r.ok and not r.stop
    assert r.refinement.box is None
    assert r.refinement.positive_points == ((1.0, 2.0),) and r.refinement.negative_points == ((3.0, 4.0), (5.0, 6.0))
    r = parse_reply('<answer>{"bbox": [0, 0, 9, 9], "negative_points": [[3, 4]], "stop": true}</answer>')
    assert r.ok and r.stop and r.objects[0].negative_points == ((3.0, 4.0),)
    full = '{"bbox": [0, 0, 9, 9], "points_1": [1, 1], "points_2": [2, 2], "negative_points": [[3, 4]]}'
    r = parse_reply(f"<answer>{full}</answer>")
    assert r.schema is AnswerSchema.SEG_ZERO and r.objects[0].points == ((1.0, 1.0), (2.0, 2.0))
    assert parse_reply('<answer>{"stop": true}</answer>').stop
    for body, reason in [
        ('{"stop": 1}', FailureReason.WRONG_TYPE),
        ('{"positive_points": [1, 2]}', FailureReason.WRONG_TYPE),
        ('{"negative_points": [[1, "2"]]}', FailureReason.NOT_A_NUMBER),
        ('{"stop": false}', FailureReason.MISSING_KEY),
        ('{"positive_points": [[1, 2]]}', None),
    ]:
        assert parse_reply(f"<answer>{body}</answer>").failure is reason, body
    reply = format_refinement([(5, 6)], [(7, 8)], box=(1, 2, 30, 40), stop=True)
    back = parse_reply(reply)
    assert back.stop and back.objects[0].box == (1.0, 2.0, 30.0, 40.0) and back.think_format


# -- spaces and single-turn compatibility --------------------------------------------------------


def test_check_env_passes_for_multi_turn_variants():
    for kwargs in ({}, {"feedback": "mask-iou", "turn_reward": "final", "turn_cost": 0.1}, {"segmenter": "grabcut"}):
        env = make(**kwargs)
        check_env(env.unwrapped)


def test_max_turns_one_keeps_the_single_turn_space_and_info():
    single, default = make(max_turns=1), gym.make("ReasonSegShapes-v0", image_size=112, segmenter="box")
    assert single.observation_space == default.observation_space
    assert sorted(single.observation_space.spaces) == ["image", "query"]
    _, info_a = single.reset(seed=4)
    _, info_b = default.reset(seed=4)
    assert info_a.keys() == info_b.keys()
    _, ra, ta, _, sa = single.step(oracle_reply(info_a))
    _, rb, tb, _, sb = default.step(oracle_reply(info_b))
    assert (ra, ta, sa.keys()) == (rb, tb, sb.keys()) and ta


def test_observation_keys_are_stable_and_filled_across_turns():
    env = make(feedback="mask-iou", max_turns=4)
    space = env.observation_space
    assert sorted(space.spaces) == ["image", "prev_iou", "prev_mask", "query", "turn"]
    obs, info = env.reset(seed=1)
    assert space.contains(obs) and obs["turn"] == 0 and not obs["prev_mask"].any() and obs["prev_iou"][0] == 0
    assert info["feedback"] == "" and info["feedback_leaks_gt"] and info["turn"] == 0
    replies = [oracle_reply(info), format_refinement([(5, 5)]), format_refinement(negative_points=[(50, 50)])]
    for turn, reply in enumerate(replies, start=1):
        obs, _, terminated, truncated, info = env.step(reply)
        assert obs.keys() == space.spaces.keys() and space.contains(obs)
        assert obs["turn"] == turn == info["turn"] and not truncated and not terminated
        assert obs["prev_mask"].shape == (112, 112) and obs["prev_mask"].any()
        assert obs["prev_iou"][0] == pytest.approx(info["iou"])
        assert f"Turn {turn + 1} of 4" in info["feedback"] and info["feedback"] in info["prompt"]
        assert "IoU of the current mask" in info["feedback"]
    assert info["current_answer"][0]["negative_points"] == [[50.0, 50.0]]
    assert len(info["current_answer"][0]["points"]) == 3


def test_default_feedback_does_not_leak_the_iou():
    env = make()
    _, info = env.reset(seed=2)
    obs, _, _, _, info = env.step(oracle_reply(info))
    assert "prev_iou" not in obs and not info["feedback_leaks_gt"] and info["feedback_level"] == "mask"
    assert "IoU" not in info["feedback"] and "stop" in info["feedback"]


def test_answer_feedback_hides_the_mask_and_scores_the_same():
    seen = {}
    for level in ("mask", "answer"):
        env = make(feedback=level, segmenter="grabcut")
        check_env(env.unwrapped)
        obs, info = env.reset(seed=3)
        ious, masks, texts = [], [], []
        for reply in [oracle_reply(info), format_refinement([(5, 5)]), format_refinement([(80, 80)])]:
            obs, _, _, _, info = env.step(reply)
            ious.append(info["iou"])
            masks.append(obs["prev_mask"].copy())
            texts.append(info["feedback"])
        seen[level] = (ious, masks, texts)
    (ious_mask, masks_mask, texts_mask), (ious_answer, masks_answer, texts_answer) = seen["mask"], seen["answer"]
    assert ious_answer == ious_mask  # the segmenter gets the same clicks and mask_input: only the view changes
    assert all(m.any() for m in masks_mask) and not any(m.any() for m in masks_answer)
    for shown, hidden in zip(texts_mask[:2], texts_answer[:2], strict=True):
        assert "Coarse map" in shown and "mask" not in hidden.split("To refine")[0]
        assert hidden.splitlines()[:2] == shown.splitlines()[:2]  # the turn marker and the answer
        assert "stop" in hidden


def test_docstring_documents_multi_turn_keys_and_arguments():
    env = make(feedback="mask-iou", expose_gt_mask=True)
    obs, reset_info = env.reset(seed=0)
    _, _, _, _, step_info = env.step(oracle_reply(reset_info))
    doc = ReasonSegEnv.__doc__
    for key in set(reset_info) | set(step_info) | set(obs):
        assert f"``{key}``" in doc, f"{key!r} is not documented"


def test_bad_multi_turn_arguments_are_rejected():
    for kwargs, match in [
        ({"max_turns": 0}, "max_turns"),
        ({"feedback": "iou"}, "feedback"),
        ({"turn_reward": "sum"}, "turn_reward"),
        ({"turn_cost": float("nan")}, "turn_cost"),
    ]:
        with pytest.raises(ValueError, match=match):
            make(**kwargs)


# -- rewards ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["gain", "final"])
def test_episode_return_equals_final_iou(mode):
    env = make(segmenter="grabcut", max_turns=4, expose_gt_mask=True, reward_weights=NO_FORMAT, turn_reward=mode)
    policy = make_policy("oracle-refine", first="grown-box")
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        total, rewards, terminated = 0.0, [], False
        while not terminated:
            obs, reward, terminated, _, info = env.step(policy.act_one(obs, info))
            total += reward
            rewards.append(reward)
        assert total == pytest.approx(info["iou"], abs=1e-12)
        assert info["iou_history"][-1] == info["iou"]
        if mode == "final":
            assert all(r == 0.0 for r in rewards[:-1])
        else:
            assert rewards == pytest.approx(np.diff([0.0, *info["iou_history"]]).tolist())


def test_format_terms_every_turn_and_turn_cost():
    env = make(turn_cost=0.25)
    _, info = env.reset(seed=3)
    _, r1, _, _, i1 = env.step(oracle_reply(info))
    assert r1 == pytest.approx(2.0 + i1["iou"]) and i1["turn_cost"] == 0.0
    _, r2, _, _, i2 = env.step(format_refinement([(10, 10)]))
    assert i2["reward_terms"]["think_format"] == 1.0 and i2["reward_terms"]["answer_format"] == 1.0
    assert r2 == pytest.approx(2.0 + i2["iou_gain"] - 0.25) and i2["turn_cost"] == 0.25


def test_unusable_refinement_keeps_the_prediction():
    env = make(segmenter="grabcut")
    _, info = env.reset(seed=5)
    obs1, _, _, _, info1 = env.step(oracle_reply(info))
    obs2, reward, terminated, _, info2 = env.step("no answer here")
    assert not terminated and info2["parse_failure"] == "no_answer_tag" and reward == 0.0
    assert info2["iou"] == info1["iou"] and info2["iou_gain"] == 0.0
    np.testing.assert_array_equal(obs1["prev_mask"], obs2["prev_mask"])


# -- episode end --------------------------------------------------------------------------------


def test_stop_answer_ends_the_episode_early():
    env = make(max_turns=5, reward_weights=NO_FORMAT)
    _, info = env.reset(seed=6)
    _, _, terminated, _, info1 = env.step(oracle_reply(info))
    assert not terminated
    obs, reward, terminated, truncated, info2 = env.step(format_refinement(stop=True))
    assert terminated and not truncated and info2["stopped"] and info2["turn"] == 2 and obs["turn"] == 2
    assert reward == 0.0 and info2["iou"] == info1["iou"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(format_refinement([(1, 1)]))


def test_running_out_of_turns_terminates_and_stop_on_first_turn():
    env = make(max_turns=2)
    _, info = env.reset(seed=0)
    assert not env.step(oracle_reply(info))[2]
    _, _, terminated, _, info = env.step(format_refinement([(3, 3)]))
    assert terminated and not info["stopped"] and info["turn"] == 2
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(format_refinement(stop=True))
    assert terminated and info["iou"] == 0.0 and info["turn"] == 1


def test_boxless_refinement_before_any_box_is_a_typed_failure():
    env = make()
    env.reset(seed=0)
    env.step("garbage")
    _, _, _, _, info = env.step(format_refinement([(3, 3)]))
    assert info["parse_failure"] == "missing_key" and "no box" in info["parse_detail"]


# -- clicks reach the segmenter -----------------------------------------------------------------


def test_clicks_accumulate_and_reach_grabcut_as_sure_labels():
    segmenter = RecordingGrabCut()
    env = make(segmenter=segmenter, max_turns=3, expose_gt_mask=True)
    _, info = env.reset(seed=7)
    obs, _, _, _, info = env.step(oracle_reply(info))
    env.step(format_refinement([(20, 20)], [(100, 100)]))
    env.step(format_refinement(negative_points=[(101, 5)]))
    prompts = [reqs[0].prompts[0] for reqs in segmenter.requests]
    assert [p.point_labels.tolist() for p in prompts] == [[1, 1], [1, 1, 1, 0], [1, 1, 1, 0, 0]]
    assert all(p.mask_input is None for p in prompts)  # GrabCut has no logits to send back
    sample = env.unwrapped.current_sample
    w_scale = sample.width / 112
    assert prompts[2].points[-1][0] == np.floor(101 * w_scale + 0.5)
    # A negative click deep inside the target removes pixels GrabCut had called foreground.
    target_pixel = tuple(int(v) for v in info["gt_points"][0])
    env.reset(seed=7)
    _, _, _, _, info = env.step(oracle_reply(info))
    before = env.unwrapped.last_pred_mask.sum()
    env.step(format_refinement(negative_points=[target_pixel]))
    assert env.unwrapped.last_pred_mask.sum() < before


def test_error_click_picks_the_larger_error_and_its_sign():
    gt = np.zeros((20, 20), np.uint8)
    gt[5:15, 5:15] = 1
    pred = np.zeros((20, 20), bool)
    pred[5:15, 5:15] = True
    assert error_click(pred, gt) is None
    pred[0:4, 0:20] = True  # 80 false-positive pixels against none missing
    (x, y), positive = error_click(pred, gt)
    assert not positive and y < 4
    pred[:] = False
    (x, y), positive = error_click(pred, gt)
    assert positive and 8 <= x <= 11 and 8 <= y <= 11
    gt[0, 0] = 255
    assert error_click(np.zeros_like(pred), gt)[1]


def test_oracle_refinement_raises_iou_turn_over_turn_on_shapes():
    env = gym.make(
        "ReasonSegShapes-v0",
        split="val",
        dataset_kwargs={"level": 3},
        image_size=224,
        segmenter="grabcut",
        segmenter_kwargs={"point_radius": 8.0},
        max_turns=4,
        expose_gt_mask=True,
    )
    policy = make_policy("oracle-refine", first="grown-box")
    curves = []
    for index in range(12):
        obs, info = env.reset(options={"index": index})
        terminated = False
        while not terminated:
            obs, _, terminated, _, info = env.step(policy.act_one(obs, info))
        history = info["iou_history"]
        curves.append(history + [history[-1]] * (4 - len(history)))
    mean = np.mean(curves, axis=0)
    assert mean[1] > mean[0] and mean[3] > mean[1] + 0.03, mean
    assert policy.stats()["positive_clicks"] > 0 and policy.stats()["negative_clicks"] > 0


# -- group vector env ---------------------------------------------------------------------------


def make_vec(**kwargs):
    return gym.make_vec(
        "ReasonSegShapes-v0",
        num_envs=4,
        vectorization_mode="vector_entry_point",
        group_size=2,
        **{"image_size": 112, "segmenter": "box", "max_turns": 3, **kwargs},
    )


def test_group_vector_multi_turn_blocks_wait_for_each_other():
    envs = make_vec(reward_weights=NO_FORMAT, autoreset_mode="NextStep")
    obs, infos = envs.reset(seed=0)
    assert envs.observation_space.contains(obs) and obs["prev_mask"].shape == (4, 112, 112)
    first = [oracle_reply(env.episode_info(env.episode)) for env in envs.unwrapped.envs]
    obs, rewards, terminated, _, infos = envs.step(first)
    assert not terminated.any() and (obs["turn"] == 1).all() and envs.observation_space.contains(obs)
    # member 0 stops, member 1 (same block) clicks, block 2 clicks
    stop, click = format_refinement(stop=True), format_refinement([(5, 5)])
    obs, rewards, terminated, _, infos = envs.step([stop, click, click, click])
    assert terminated.tolist() == [True, False, False, False]
    assert envs.unwrapped.waiting.tolist() == [True, False, False, False]
    obs, rewards, terminated, _, infos = envs.step([click, click, click, click])
    assert terminated.tolist() == [False, True, True, True]
    assert rewards[0] == 0.0 and infos["waiting"][0] and not infos["waiting"][1:].any()
    assert obs["turn"].tolist() == [2, 3, 3, 3]
    # every member is done: the next step resets both blocks together
    obs, rewards, terminated, _, infos = envs.step([click] * 4)
    assert (obs["turn"] == 0).all() and (rewards == 0).all() and not terminated.any()
    assert not envs.unwrapped.waiting.any()


def test_group_vector_multi_turn_rewards_equal_single_env_and_one_call_per_turn():
    segmenter = RecordingGrabCut()
    envs = make_vec(segmenter=segmenter)
    _, infos = envs.reset(seed=3)
    turns = [
        [oracle_reply(env.episode_info(env.episode)) for env in envs.unwrapped.envs],
        [format_refinement([(30, 30)]), format_refinement([], [(2, 2)]), "junk", format_refinement([(9, 9)])],
    ]
    vec_rewards = [envs.step(replies)[1] for replies in turns]
    assert len(segmenter.requests) == 2 and [len(r) for r in segmenter.requests] == [2, 2]
    single = make(segmenter="grabcut")
    for i in range(4):
        single.reset(options={"sample_id": infos["sample_id"][i]})
        for t, replies in enumerate(turns):
            reward = single.step(replies[i])[1]
            assert reward == pytest.approx(vec_rewards[t][i], abs=1e-12)


# -- evaluation ---------------------------------------------------------------------------------


def test_evaluate_reports_iou_after_each_turn(tmp_path):
    import json

    from segzero_env.evaluation.runner import evaluate

    env_kwargs = {"split": "val", "image_size": 112, "max_turns": 3, "expose_gt_mask": True, "segmenter": "grabcut"}
    metrics = evaluate(
        "ReasonSegShapes-v0",
        env_kwargs,
        policy="oracle-refine",
        out_dir=tmp_path,
        limit=4,
        batch_size=2,
        progress=False,
    )
    curve = metrics["miou_after_turn"]
    assert len(curve) == 3 and curve[-1] == pytest.approx(metrics["giou"], abs=1e-6)
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert all(1 <= len(r["iou_per_turn"]) <= 3 and r["iou_per_turn"][-1] == r["env_iou"] for r in records)
    assert all(len(r["iou_per_turn"]) == r["turns"] for r in records)

import json

import numpy as np
import pytest

from segzero_env import allow_code
from segzero_env.parsing import parse_reply
from segzero_env.policies import PolicyBase, make_policy, policy_names
from segzero_env.policies.replay import ReplayPolicy, read_replies
from segzero_env.types import AnswerSchema

S = 84


def obs_info(sample_id="s0", **info):
    obs = {"image": np.zeros((S, S, 3), np.uint8), "query": "the red square"}
    return obs, {"sample_id": sample_id, "image_size": S, **info}


class EchoPolicy(PolicyBase):
    def __init__(self, text="hi"):
        self.text = text

    def act_one(self, observation, info):
        return self.text


def test_registry_names_and_module_class():
    assert {"random", "full-image", "oracle", "replay", "hf", "openai"} <= set(policy_names())
    with allow_code():
        policy = make_policy(f"{__name__}:EchoPolicy", text="yo")
    assert policy.act(*zip(obs_info(), strict=True)) == ["yo"]
    assert make_policy(EchoPolicy, text="by class").act(*zip(obs_info(), strict=True)) == ["by class"]
    instance = EchoPolicy()
    assert make_policy(instance) is instance


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        make_policy("nope")
    with allow_code(), pytest.raises(ValueError, match="cannot import module"):
        make_policy("no_such_module_xyz:Thing")
    with allow_code(), pytest.raises(ValueError, match="no attribute 'Missing'"):
        make_policy(f"{__name__}:Missing")
    with pytest.raises(ValueError, match="kwargs given together with a policy instance"):
        make_policy(EchoPolicy(), text="x")
    with pytest.raises(ValueError, match="no act"):
        make_policy(object())


def test_act_rejects_mismatched_batch():
    obs, info = obs_info()
    with pytest.raises(ValueError, match="2 observations but 1 infos"):
        make_policy("full-image").act([obs, obs], [info])


def test_random_replies_are_well_formed_inside_frame_and_seeded_per_sample():
    policy = make_policy("random", seed=7)
    batch = [obs_info(f"s{i}") for i in range(50)]
    observations, infos = zip(*batch, strict=True)
    replies = policy.act(observations, infos)
    boxes = []
    for reply in replies:
        parsed = parse_reply(reply)
        assert parsed.ok and parsed.think_format and parsed.strict_json
        (obj,) = parsed.objects
        x1, y1, x2, y2 = obj.box
        assert 0 <= x1 < x2 <= S - 1 and 0 <= y1 < y2 <= S - 1
        assert len(obj.points) == 2
        for x, y in obj.points:
            assert x1 <= x <= x2 and y1 <= y <= y2
        boxes.append(obj.box)
    assert len(set(boxes)) > 40  # not one box repeated
    # the reply depends on (seed, sample id), not on the order samples arrive in
    again = make_policy("random", seed=7).act(observations[::-1], infos[::-1])
    assert again == replies[::-1]
    other = make_policy("random", seed=8).act(observations, infos)
    assert other != replies
    policy.reset(8)
    assert policy.act(observations, infos) == other


def test_random_vision_reasoner_schema():
    reply = make_policy("random", schema="vision-reasoner").act(*zip(obs_info(), strict=True))[0]
    parsed = parse_reply(reply)
    assert parsed.ok and parsed.schema is AnswerSchema.VISION_REASONER


def test_full_image():
    (reply,) = make_policy("full-image").act(*zip(obs_info(), strict=True))
    (obj,) = parse_reply(reply).objects
    assert obj.box == (0.0, 0.0, S - 1.0, S - 1.0)
    assert obj.points == ((S // 3, S // 3), (2 * S // 3, 2 * S // 3))


def test_full_image_uses_image_shape_without_image_size():
    obs = {"image": np.zeros((56, 56, 3), np.uint8), "query": "q"}
    (reply,) = make_policy("full-image").act([obs], [{}])
    assert parse_reply(reply).objects[0].box == (0.0, 0.0, 55.0, 55.0)


def test_oracle_repeats_ground_truth():
    policy = make_policy("oracle")
    obs, info = obs_info(gt_box=[1.5, 2.0, 30.0, 40.25], gt_points=[[3.0, 4.0], [5.0, 6.5]])
    (obj,) = parse_reply(policy.act([obs], [info])[0]).objects
    assert obj.box == (1.5, 2.0, 30.0, 40.25) and obj.points == ((3.0, 4.0), (5.0, 6.5))
    obs, info = obs_info(gt_box=[10, 10, 20, 30], gt_points=[[12, 14]])
    (obj,) = parse_reply(policy.act([obs], [info])[0]).objects
    assert obj.points == ((12.0, 14.0), (12.0, 14.0))
    obs, info = obs_info(gt_box=None, gt_points=None)
    assert policy.act([obs], [info]) == [""]
    assert policy.stats() == {"no_target": 1}


def test_oracle_without_ground_truth_says_what_it_needs():
    obs, info = obs_info()
    with pytest.raises(KeyError, match="gt_box"):
        make_policy("oracle").act([obs], [info])


def test_replay_reads_replies_and_counts_missing(tmp_path):
    path = tmp_path / "replies.jsonl"
    lines = [
        {"sample_id": "a", "reply": "first"},
        {"sample_id": "b", "reply": "bee"},
        {"sample_id": "a", "reply": "second"},
        {"sample_id": 7, "reply": {"not": "a string"}},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    assert read_replies(path) == {"a": "second", "b": "bee", "7": '{"not": "a string"}'}
    policy = make_policy("replay", replies=str(path))
    batch = [obs_info(sid) for sid in ("a", "zz", "b", "yy")]
    assert policy.act(*zip(*batch, strict=True)) == ["second", "", "bee", ""]
    assert policy.stats()["missing_replies"] == 2
    assert policy.stats()["missing_examples"] == ["zz", "yy"]


def test_replay_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ReplayPolicy(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sample_id": "a", "reply": "x"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        ReplayPolicy(bad)
    bad.write_text('{"sample_id": "a"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match='"reply"'):
        ReplayPolicy(bad)


def test_oracle_answers_several_targets_and_no_target_on_shapes_level_four(tmp_path):
    import gymnasium as gym

    from segzero_env.evaluation import evaluate

    env = gym.make("ReasonSegShapes-v0", segmenter="box", split="val", dataset_kwargs={"level": 4})
    oracle = make_policy("oracle")
    seen = set()
    for index in (*range(6), 13, 14):
        obs, info = env.reset(options={"index": index})
        reply = oracle.act([obs], [info])[0]
        parsed = parse_reply(reply)
        _, reward, _, _, step_info = env.step(reply)
        style = env.unwrapped.current_sample.meta["query_style"]
        seen.add(style)
        if style == "absent":
            assert info["no_target"] and info["gt_objects"] == [] and parsed.no_object
            assert step_info["iou"] == 1.0 and step_info["reward_terms"]["answer_format"] == 1.0
        elif style == "every":
            assert len(parsed.objects) == len(info["gt_objects"]) >= 2 and step_info["iou"] > 0.3
    assert seen == {"attribute", "every", "absent"}
    metrics = evaluate(
        "ReasonSegShapes-v0",
        {"segmenter": "box", "split": "val", "dataset_kwargs": {"level": 4}},
        policy="oracle",
        out_dir=tmp_path,
        limit=12,
        progress=False,
    )
    assert metrics["no_target"]["n_acc"] == 1.0 and metrics["no_target"]["t_acc"] == 1.0

import numpy as np
import pytest
import torch

from segzero_env.answers import format_reply
from segzero_env.hf.tiny import build_tiny_qwen25vl
from segzero_env.parsing import parse_reply
from segzero_env.policies import make_policy
from segzero_env.policies.replies import reply_in_env_frame

S = 56


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    torch.set_num_threads(1)
    model, processor = build_tiny_qwen25vl(seed=0, hidden=32)
    path = tmp_path_factory.mktemp("tiny_qwen25vl")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def batch(n):
    rng = np.random.default_rng(1)
    observations = [{"image": rng.integers(0, 255, (S, S, 3), dtype=np.uint8), "query": f"q{i}"} for i in range(n)]
    infos = [
        {"sample_id": f"s{i}", "image_size": S, "prompt": f"Please find 'the shape number {i}' with bbox and points."}
        for i in range(n)
    ]
    return observations, infos


def test_hf_policy_loads_by_path_and_generates_greedily(tiny_path):
    policy = make_policy("hf", model=tiny_path, max_new_tokens=6, dtype="float32")
    assert policy.model_type == "qwen2_5_vl" and policy.coordinate_frame == "absolute"
    assert policy.model.config.model_type == "qwen2_5_vl"
    observations, infos = batch(3)
    replies = policy.act(observations, infos)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    assert policy.generated_tokens > 0
    # greedy: the same batch gives the same replies
    assert policy.act(observations, infos) == replies
    # chunked generation gives one reply per observation, in order
    chunked = make_policy("hf", model=tiny_path, max_new_tokens=6, batch_size=2)
    assert len(chunked.act(observations, infos)) == 3
    single = chunked.act(observations[:1], infos[:1])
    assert len(single) == 1
    policy.close()


def test_hf_policy_accepts_objects_and_checks_arguments(tiny_path):
    model, processor = build_tiny_qwen25vl(seed=0, hidden=32)
    with pytest.raises(ValueError, match="processor"):
        make_policy("hf", model=model)
    with pytest.raises(ValueError, match="batch_size"):
        make_policy("hf", model=model, processor=processor, batch_size=0)
    policy = make_policy(
        "hf",
        model=model,
        processor=processor,
        max_new_tokens=3,
        coordinate_frame="relative-1000",
        do_sample=True,
        temperature=0.7,
        seed=3,
    )
    assert policy.coordinate_frame == "relative-1000" and policy.generate_kwargs["do_sample"]
    observations, infos = batch(2)
    policy.reset(3)
    first = policy.act(observations, infos)
    policy.reset(3)
    assert policy.act(observations, infos) == first  # sampling is seeded


def test_relative_frame_conversion_keeps_reasoning():
    reply = format_reply(box=(100, 200, 500, 1000), points=[(250, 500), (300, 600)], think="the big one")
    converted = reply_in_env_frame(reply, "relative-1000", 840)
    assert "the big one" in converted
    (obj,) = parse_reply(converted).objects
    assert obj.box == (84.0, 168.0, 420.0, 840.0) and obj.points[0] == (210.0, 420.0)
    assert reply_in_env_frame(reply, "absolute", 840) == reply
    assert reply_in_env_frame("garbage", "relative-1000", 840) == "garbage"
    with pytest.raises(ValueError, match="coordinate frame"):
        reply_in_env_frame(reply, "normalised", 840)


def test_eval_runs_the_hf_policy_end_to_end(tiny_path, tmp_path):
    from segzero_env.evaluation import evaluate
    from segzero_env.evaluation.results import read_results

    env_kwargs = {"segmenter": "box", "split": "val", "image_size": 56, "dataset_kwargs": {"size": 3}}
    metrics = evaluate(
        "ReasonSegShapes-v0",
        env_kwargs,
        "hf",
        tmp_path,
        batch_size=2,
        progress=False,
        policy_kwargs={"model": tiny_path, "max_new_tokens": 8},
    )
    records, _ = read_results(tmp_path / "results.jsonl")
    assert metrics["n"] == 3 and len(records) == 3
    assert metrics["policy_stats"]["model_type"] == "qwen2_5_vl"
    # a random-weight model writes no usable answer: every reply is scored as an empty prediction
    assert metrics["unusable_reply_rate"] == 1.0 and metrics["giou"] == 0.0
    assert all(isinstance(r["reply"], str) and r["parse_failure"] for r in records)

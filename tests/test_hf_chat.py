import pytest

from segzero_env.hf.chat import (
    COORDINATE_FRAMES,
    build_messages,
    coordinate_frame,
    reply_to_env_frame,
    scale_value,
)
from segzero_env.parsing import parse_reply


def test_messages_put_the_image_before_the_prompt():
    messages = build_messages("find the red circle")
    assert messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert [p["type"] for p in messages[1]["content"]] == ["image", "text"]
    assert build_messages("q", system=None, image="IMG")[0]["content"][0] == {"type": "image", "image": "IMG"}


def test_frames_by_model_type():
    assert coordinate_frame("qwen2_5_vl") == "absolute"
    assert {coordinate_frame(t) for t in ("qwen2_vl", "qwen3_vl")} == {"relative-1000"}
    with pytest.raises(KeyError, match="COORDINATE_FRAMES"):
        coordinate_frame("llava")
    assert set(COORDINATE_FRAMES) >= {"qwen2_5_vl", "qwen2_vl", "qwen3_vl"}
    with pytest.raises(ValueError):
        scale_value(1.0, "normalised", 840)


def test_relative_reply_is_rewritten_into_the_env_frame():
    reply = (
        '<think>the left one</think> <answer>{"bbox": [0, 100, 500, 1000], "points_1": [250, 500], '
        '"points_2": [100, 200]}</answer>'
    )
    out = reply_to_env_frame(reply, "qwen3_vl", image_size=840)
    assert out.startswith("<think>the left one</think>")
    parsed = parse_reply(out)
    assert parsed.ok and parsed.think_format
    assert parsed.objects[0].box == (0.0, 84.0, 420.0, 840.0)
    assert parsed.objects[0].points == ((210.0, 420.0), (84.0, 168.0))
    # absolute-frame models and unusable replies pass through untouched
    assert reply_to_env_frame(reply, "qwen2_5_vl", 840) == reply
    assert reply_to_env_frame("no answer here", "qwen2_vl", 840) == "no answer here"

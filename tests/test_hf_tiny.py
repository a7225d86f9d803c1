import numpy as np
import pytest
import torch

from segzero_env.hf.chat import batch_inputs, decode_replies
from segzero_env.hf.tiny import SPECIAL_TOKENS, build_tiny_qwen25vl


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return build_tiny_qwen25vl(seed=0, hidden=32)


def test_config_follows_the_recipe(tiny):
    model, processor = tiny
    cfg = model.config
    assert cfg.model_type == "qwen2_5_vl"
    assert cfg.text_config.num_hidden_layers == 2 and cfg.vision_config.depth == 2
    head_dim = cfg.text_config.hidden_size // cfg.text_config.num_attention_heads
    assert sum(cfg.text_config.rope_parameters["mrope_section"]) == head_dim // 2
    assert cfg.vision_config.out_hidden_size == cfg.text_config.hidden_size
    tok = processor.tokenizer
    for name in SPECIAL_TOKENS:
        assert tok.convert_tokens_to_ids(name) < len(tok)
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")


def test_rejects_bad_hidden():
    with pytest.raises(ValueError, match="multiple of 16"):
        build_tiny_qwen25vl(hidden=30)


def test_tokenizer_round_trips_reply_text(tiny):
    _, processor = tiny
    text = '<think> a red circle </think> <answer>{"bbox": [12, 8, 40, 33], "points_1": [20, 15]}</answer> é✓'
    ids = processor.tokenizer(text).input_ids
    assert processor.tokenizer.decode(ids) == text
    # reply fragments were merged into multi-character tokens
    assert len(ids) < 0.6 * len(text)


def test_generate_and_decode(tiny):
    model, processor = tiny
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (56, 56, 3), dtype=np.uint8) for _ in range(2)]
    batch = batch_inputs(processor, images, ["find the red circle", "find the largest shape in the picture"])
    # left padding: every row ends with the assistant header, not with pad
    assert (batch["attention_mask"][:, -1] == 1).all()
    assert batch["attention_mask"][0, 0] == 0
    torch.manual_seed(0)
    out = model.generate(**batch, do_sample=True, max_new_tokens=8, temperature=1.0)
    replies = decode_replies(processor, out[:, batch["input_ids"].shape[1] :])
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)


def test_save_and_reload_is_identical(tiny, tmp_path):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    model2 = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path)
    processor2 = AutoProcessor.from_pretrained(tmp_path)
    image = np.full((56, 56, 3), 128, np.uint8)
    batch = batch_inputs(processor, [image], ["the blue square"])
    batch2 = batch_inputs(processor2, [image], ["the blue square"])
    assert torch.equal(batch["input_ids"], batch2["input_ids"])
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, model2(**batch2).logits)


def test_saved_compact_tiny_model_reloads_with_its_own_tokenization(tmp_path):
    from segzero_agents.policy_model import load_policy

    from segzero_env.policies.hf_policy import HFPolicy

    model, processor = build_tiny_qwen25vl(seed=0, hidden=32, compact_max_coordinate=56)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    text = '<answer>{"bbox": [10, 12, 40, 33]}</answer> Please find the red circle'
    expected = processor.tokenizer(text).input_ids
    reloaded = load_policy(str(tmp_path), device=torch.device("cpu"), kl_coef=0.0).processor
    assert reloaded.tokenizer(text).input_ids == expected
    policy = HFPolicy(model=str(tmp_path), device="cpu")
    assert policy.processor.tokenizer(text).input_ids == expected


@pytest.mark.parametrize(("patch", "tokens"), [(14, 4), (28, 1)])
def test_patch_size_sets_the_image_tokens_and_survives_a_reload(patch, tokens, tmp_path):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model, processor = build_tiny_qwen25vl(seed=0, hidden=32, patch_size=patch)
    image = np.random.default_rng(1).integers(0, 255, (56, 56, 3), dtype=np.uint8)
    batch = batch_inputs(processor, [image], ["the red circle"])
    assert int((batch["input_ids"] == model.config.image_token_id).sum()) == tokens
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    again = batch_inputs(reloaded, [image], ["the red circle"])
    assert torch.equal(batch["pixel_values"], again["pixel_values"])
    model2 = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, model2(**again).logits)

"""The TRL adapter: dataset builder, reward functions, and a real GRPOTrainer step on CPU."""

import pytest
import torch

from segzero_env.answers import format_reply
from segzero_env.integrations.trl import EnvScorer, build_grpo_dataset, completion_text, make_reward_funcs

ENV = {"image_size": 56, "segmenter": "box"}


@pytest.fixture(scope="module")
def dataset():
    return build_grpo_dataset("ReasonSegShapes-v0", split="train", limit=4, **ENV)


def test_dataset_columns(dataset):
    assert set(dataset.column_names) >= {"prompt", "image", "sample_id", "image_size"}
    row = dataset[0]
    assert row["prompt"][0]["role"] == "system" and row["prompt"][1]["role"] == "user"
    assert "bbox" in row["prompt"][1]["content"]
    assert row["image"].size == (56, 56)


def test_reward_funcs_score_like_the_env(dataset):
    scorer = EnvScorer("ReasonSegShapes-v0", **ENV)
    funcs = make_reward_funcs(terms=scorer.term_names, scorer=scorer)
    names = [f.__name__ for f in funcs]
    assert names[0] == "segzero_reward" and "segzero_mask_iou" in names
    sid = dataset[0]["sample_id"]
    env = scorer.env
    _, info = env.reset(options={"sample_id": sid})
    good = format_reply(box=info["gt_box"], points=info["gt_points"])
    completions = [[{"role": "assistant", "content": good}], "nonsense"]
    combined = funcs[0](prompts=None, completions=completions, completion_ids=None, sample_id=[sid, sid])
    assert combined[0] > combined[1] == 0.0
    iou = dict(zip(names, funcs, strict=True))["segzero_mask_iou"](completions=completions, sample_id=[sid, sid])
    assert iou[0] > 0.2 and iou[1] == 0.0  # the box segmenter fills the GT box: IoU < 1 for round shapes
    with pytest.raises(ValueError, match="sample_id"):
        funcs[0](completions=completions)
    with pytest.raises(ValueError, match="unknown reward terms"):
        make_reward_funcs(terms=["nope"], scorer=scorer)


def test_completion_text_handles_every_form():
    assert completion_text("a") == "a"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "b"}]}]) == "b"


def test_grpo_trainer_runs_a_step(dataset, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    from segzero_env.hf.tiny import build_tiny_qwen25vl

    torch.set_num_threads(1)
    model, processor = build_tiny_qwen25vl(seed=0, hidden=32)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    calls = []

    rewards = make_reward_funcs("ReasonSegShapes-v0", **ENV)

    def spread(completions, **kwargs):
        # the tiny model's replies all score 0; this varies rewards so the step has a gradient
        calls.append(kwargs["sample_id"])
        return [float(sum(map(ord, completion_text(c))) % 7) for c in completions]

    config = GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        max_steps=1,
        learning_rate=1e-2,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        beta=0.0,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=[*rewards, spread], args=config, train_dataset=dataset, processing_class=processor
    )
    trainer.train()
    assert calls and all(isinstance(s, str) for s in calls[0])
    logged = trainer.state.log_history[0]
    assert "rewards/segzero_reward/mean" in logged
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach().cpu(), before[n])]
    assert changed

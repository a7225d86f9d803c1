"""TRL's ``GRPOTrainer`` on refinement episodes: the ``trl`` arm of ``grpo_refinement.py``.

TRL samples one completion per prompt and scores it once, so a ``K``-turn trajectory has to be ONE
completion. Its (experimental) ``rollout_func`` makes that possible with text feedback:
:class:`RefinementRolloutFunc` plays each group member's trajectory in the env and returns it flattened,
``reply 1, feedback 2, reply 2, ...``, where a feedback is the env's turn prompt as a user turn of the
chat (``env_mask`` 0: TRL leaves it out of the loss) and the trajectory's return (the sum of the env's
gain rewards: the final IoU plus every turn's format terms) is the one reward TRL normalises within the
group. That is trajectory-level GRPO, as the bundled agent's ``--turn-advantage trajectory``.

Where this differs from the bundled agent (TRL cannot express the rest):

- the context of a later turn is the whole history (turn-1 image and prompt, every reply and
  feedback so far), not the turn's own state: TRL scores a completion as one sequence after one prompt;
- the feedback can only be text: a completion carries tokens, and TRL's forward pass sees only the
  dataset's image, so the mask cannot be shown as an image (``--feedback image``);
- one scalar advantage per completion: no per-turn or immediate advantages.

Everything else is the bundled agent's setting (``grpo_learning.trl_config``): the same warm-started
weights, prompts in the same order, group size, learning rate, temperature, reply length, token-mean
loss, no KL term. Evaluation plays greedy episodes the same flattened way on the same val samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

TURN_OPEN = "\n<|im_start|>user\n"
TURN_CLOSE = "<|im_end|>\n<|im_start|>assistant\n"


def feedback_ids(tokenizer: Any, text: str, reply_ended: bool) -> list[int]:
    r"""The tokens between a reply and the next one: the feedback as a user turn, then the assistant's cue.

    A reply cut at the length limit has no end-of-turn token; it is closed here (outside the loss).

    >>> class Tok:
    ...     def encode(self, text, add_special_tokens=False):
    ...         return list(text)
    >>> "".join(feedback_ids(Tok(), "Turn 2", reply_ended=False))
    '<|im_end|>\n<|im_start|>user\nTurn 2<|im_end|>\n<|im_start|>assistant\n'
    """
    prefix = "" if reply_ended else "<|im_end|>"
    return list(tokenizer.encode(prefix + TURN_OPEN + text + TURN_CLOSE, add_special_tokens=False))


@dataclass
class FlatTrajectories:
    """``N`` trajectories, each flattened into one completion (lists are per member).

    Attributes:
        prompt_ids: Turn 1's prompt tokens (no padding).
        completion_ids: Every reply and the feedback between them.
        env_mask: 1 on reply tokens, 0 on feedback tokens.
        logprobs: Each token's log-probability when it was sampled (0 on feedback tokens).
        returns: ``N`` sums of the env's turn rewards.
        ious: ``N x K`` IoU after each turn, carried forward after a trajectory ended.
        turn_mask: ``N x K`` 1 where the member replied.
        unusable: ``N x K`` 1 where that reply could not be parsed.
        stopped: ``N`` bools: the trajectory ended with a stop reply.
    """

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    env_mask: list[list[int]]
    logprobs: list[list[float]]
    returns: np.ndarray
    ious: np.ndarray
    turn_mask: np.ndarray
    unusable: np.ndarray
    stopped: np.ndarray


@torch.no_grad()
def _generate(
    model: Any, batch: dict[str, Any], *, greedy: bool, temperature: float, max_new_tokens: int, eos: int, pad: int,
    suppress: list[int],
) -> tuple[list[list[int]], list[list[float]]]:  # fmt: skip
    sampling = {} if greedy else {"temperature": temperature, "top_p": 1.0, "top_k": 0}
    was_training = model.training
    model.eval()
    try:
        out = model.generate(
            **batch, do_sample=not greedy, max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=pad,
            suppress_tokens=suppress, output_scores=True, return_dict_in_generate=True, **sampling,
        )  # fmt: skip
    finally:
        model.train(was_training)
    new = out.sequences[:, batch["input_ids"].shape[1] :]
    logps = torch.stack(out.scores, dim=1).float().log_softmax(dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
    ids, lps = [], []
    for row, lp in zip(new.tolist(), logps.tolist(), strict=True):
        end = row.index(eos) + 1 if eos in row else len(row)
        ids.append(row[:end])
        lps.append(lp[:end])
    return ids, lps


def _left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids, mask


def play_flat(
    model: Any,
    processor: Any,
    envs: Any,
    sample_ids: list[str],
    *,
    seed: int,
    greedy: bool,
    temperature: float,
    max_new_tokens: int,
    expect_prompts: list[str] | None = None,
) -> FlatTrajectories:
    """Play one text-feedback trajectory per sub-env of the group vector env ``envs``, flattened.

    Args:
        model: The (unwrapped) policy.
        processor: Its processor.
        envs: The group vector env (``max_turns=K``, ``autoreset_mode="NextStep"``).
        sample_ids: One sample id per block of ``G`` sub-envs.
        seed: The reset seed.
        greedy: Greedy replies (evaluation) instead of sampling.
        temperature: Sampling temperature.
        max_new_tokens: Reply length limit per turn.
        expect_prompts: The turn-1 prompt each block must have (TRL's dataset row): a mismatch means
            the trainer's prompts and the env's samples drifted apart, and raises.
    """
    from segzero_agents.rollout import repeat_rows, select_rows, vision_token_ids

    from segzero_env.hf.chat import batch_inputs

    n, g = envs.num_envs, envs.group_size
    k_max = int(envs.envs[0].max_turns)
    tok = processor.tokenizer
    eos, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.pad_token_id
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    obs, info = envs.reset(seed=seed, options={"sample_ids": list(sample_ids)})
    first = [str(p) for p in info["prompt"][::g]]
    if expect_prompts is not None and list(expect_prompts) != first:
        raise RuntimeError("the trainer's prompts and the env's samples differ: the sample schedule drifted")
    full = repeat_rows(dict(batch_inputs(processor, list(obs["image"][::g]), first)), g)
    prompt_ids = [row[m.bool()].tolist() for row, m in zip(full["input_ids"], full["attention_mask"], strict=True)]
    contexts = [list(p) for p in prompt_ids]
    shape = (n, k_max)
    out = FlatTrajectories(
        prompt_ids=prompt_ids, completion_ids=[[] for _ in range(n)], env_mask=[[] for _ in range(n)],
        logprobs=[[] for _ in range(n)], returns=np.zeros(n), ious=np.zeros(shape),
        turn_mask=np.zeros(shape, dtype=np.int64), unusable=np.zeros(shape, dtype=np.int64),
        stopped=np.zeros(n, dtype=bool),
    )  # fmt: skip
    done = np.zeros(n, dtype=bool)
    suppress = vision_token_ids(processor)
    for turn in range(k_max):
        rows = [int(i) for i in np.flatnonzero(~done)]
        batch = select_rows(full, rows)
        batch["input_ids"], batch["attention_mask"] = _left_pad([contexts[i] for i in rows], pad)
        if "mm_token_type_ids" in batch:  # 1 on the image's placeholder tokens, 0 on text and padding
            batch["mm_token_type_ids"] = (batch["input_ids"] == image_pad).long()
        ids, lps = _generate(
            model, batch, greedy=greedy, temperature=temperature, max_new_tokens=max_new_tokens, eos=eos, pad=pad,
            suppress=suppress,
        )  # fmt: skip
        actions = [""] * n
        for j, i in enumerate(rows):
            actions[i] = tok.decode(ids[j], skip_special_tokens=True)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        for j, i in enumerate(rows):
            out.completion_ids[i] += ids[j]
            out.env_mask[i] += [1] * len(ids[j])
            out.logprobs[i] += lps[j]
            contexts[i] += ids[j]
            out.returns[i] += float(rewards[i])
            out.turn_mask[i, turn] = 1
            out.ious[i, turn] = float(info["iou"][i])
            out.unusable[i, turn] = info["parse_failure"][i] is not None
            out.stopped[i] |= bool(info["stopped"][i])
        for i in np.flatnonzero(done):
            out.ious[i, turn] = out.ious[i, turn - 1]
        done |= np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
        if turn + 1 < k_max:
            for j, i in enumerate(rows):
                if not done[i]:
                    fb = feedback_ids(tok, str(info["prompt"][i]), reply_ended=bool(ids[j]) and ids[j][-1] == eos)
                    out.completion_ids[i] += fb
                    out.env_mask[i] += [0] * len(fb)
                    out.logprobs[i] += [0.0] * len(fb)
                    contexts[i] += fb
        if done.all():
            out.ious[:, turn + 1 :] = out.ious[:, turn : turn + 1]
            break
    return out


def evaluate_flat(model: Any, processor: Any, eval_envs: Any, args: Any) -> dict[str, float]:
    """Greedy flattened episodes on the first ``args.eval_samples`` val samples: gIoU after every turn."""
    from segzero_agents.evaluation import eval_blocks

    parts = []
    for m, block in eval_blocks(eval_envs, args):
        traj = play_flat(
            model, processor, eval_envs, block, seed=args.seed, greedy=True, temperature=1.0,
            max_new_tokens=args.max_new_tokens,
        )  # fmt: skip
        parts.append((traj.ious[:m], traj.stopped[:m], traj.turn_mask[:m].sum(axis=1), traj.unusable[:m, 0]))
    ious = np.concatenate([p[0] for p in parts])
    out = {f"eval/giou_turn_{k + 1}": float(ious[:, k].mean()) for k in range(ious.shape[1])}
    out.update(
        {
            "eval/giou": float(ious[:, -1].mean()),
            "eval/stop_rate": float(np.concatenate([p[1] for p in parts]).mean()),
            "eval/turns_used": float(np.concatenate([p[2] for p in parts]).mean()),
            "eval/unusable_rate": float(np.concatenate([p[3] for p in parts]).mean()),
        }
    )
    return out


class RefinementRolloutFunc:
    """TRL ``rollout_func``: each call plays the next ``P`` scheduled samples' ``G`` trajectories.

    TRL hands the rollout the batch's prompts (``G`` consecutive copies of each dataset row, rows in
    dataset order); the dataset is the schedule ``order``, so the ``c``-th call plays
    ``order[c * P : (c + 1) * P]``, and the prompts are checked against the env's.
    """

    def __init__(self, envs: Any, processor: Any, order: list[str], args: Any) -> None:
        self.envs, self.processor, self.order, self.args = envs, processor, order, args
        self.cursor = 0

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        """Play the batch's trajectories; return what TRL needs plus each one's return."""
        g = self.envs.group_size
        p = len(prompts) // g
        ids = self.order[self.cursor : self.cursor + p]
        self.cursor += p
        texts = [_last_user_text(prompts[i * g]) for i in range(p)]
        model = trainer.accelerator.unwrap_model(trainer.model)
        traj = play_flat(
            model, self.processor, self.envs, ids, seed=self.args.seed, greedy=False,
            temperature=self.args.temperature, max_new_tokens=self.args.max_new_tokens, expect_prompts=texts,
        )  # fmt: skip
        return {
            "prompt_ids": traj.prompt_ids,
            "completion_ids": traj.completion_ids,
            "logprobs": traj.logprobs,
            "env_mask": traj.env_mask,
            "trajectory_return": traj.returns.tolist(),
        }


def _last_user_text(prompt: Any) -> str:
    content = [m for m in prompt if m["role"] == "user"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def trajectory_return(completions: list[Any], trajectory_return: list[float], **kwargs: Any) -> list[float]:
    """TRL reward function: the return the rollout measured for each flattened trajectory."""
    return [float(r) for r in trajectory_return]


def run_trl_refinement(args: Any, start: str, eval_every: int) -> list[dict[str, Any]]:
    """Train ``start`` (a saved warm-started policy) with TRL on flattened K-turn episodes.

    ``args``: the bundled agent's arguments for the multi-turn arm (``max_turns``, schedule, optimiser).
    Returns one record per evaluation (step 0 and every ``eval_every`` steps) with the agent's
    ``eval/...`` keys plus ``time/step_s``.
    """
    import os
    import time

    from accelerate import Accelerator
    from grpo_learning import trl_config, trl_schedule
    from segzero_agents.grpo import make_envs, make_eval_envs, policy_from_args, seed_everything
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    seed_everything(args.seed)
    accelerator = Accelerator(cpu=True)
    bundle = policy_from_args(args, accelerator.device)
    model, processor = bundle.model, bundle.processor
    g, p = args.group_size, args.prompts_per_step
    envs = make_envs(args, p * g, g, args.split, args.dataset, args.data_root, max_turns=args.max_turns)
    eval_envs = make_eval_envs(args, args.max_turns)
    order, dataset = trl_schedule(args, list(envs.envs[0].dataset.sample_ids))
    rollout = RefinementRolloutFunc(envs, processor, order, args)
    records = [{"step": 0, **evaluate_flat(model, processor, eval_envs, args)}]
    step_s: list[float] = []

    class EvalAndTime(TrainerCallback):
        def on_step_begin(self, targs: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, targs: Any, state: Any, control: Any, **kw: Any) -> None:
            step_s.append(time.perf_counter() - self.t0)
            if state.global_step % eval_every == 0 or state.global_step == args.steps:
                records.append({"step": state.global_step, **evaluate_flat(kw["model"], processor, eval_envs, args)})

    trainer = GRPOTrainer(
        model=model, reward_funcs=[trajectory_return], args=trl_config(args, processor), train_dataset=dataset,
        processing_class=processor, callbacks=[EvalAndTime()], rollout_func=rollout,
    )  # fmt: skip
    trainer.train()
    envs.close()
    eval_envs.close()
    for r in records:
        r["time/step_s"] = float(np.mean(step_s)) if step_s else 0.0
    return records

"""Does the bundled GRPO agent learn? Held-out gIoU of the ``tiny-learn`` preset, against a control and TRL.

Every run starts from the same policy: the tiny Qwen2.5-VL (built from config, compact tokenizer,
56 px images) after the preset's supervised warm start on jittered oracle replies, which teaches the
answer format but localises only roughly. Then three trainers get the same prompts in the same order,
the same group size, learning rate, reply length and number of steps:

- ``grpo``: the bundled agent (:func:`segzero_agents.grpo.train`);
- ``control``: the same, with the rewards permuted within each group before the advantages
  (``--shuffle-rewards``): the same compute and update noise, no reward signal;
- ``trl``: TRL's ``GRPOTrainer`` with :func:`segzero_env.integrations.trl.make_reward_funcs` (the env's
  own rewards), configured like the agent (no KL term, token-mean "dapo" loss, group-scaled
  advantages, constant learning rate, temperature 1, the vision placeholder tokens suppressed).

Each policy is scored before the first update and every ``--eval-every`` steps on the first
``--eval-samples`` samples of the ``val`` split (never trained on), with greedy replies: gIoU (LISA)
and the unusable-reply rate. The segmenter is ``box`` (the mask is the predicted box), so a step costs
well under a second on one CPU core and the ceiling is the box-shaped mask of each object.

For level 1 (two objects, the query picks one) the table also gives the best query-blind answer: the
better of "one of the two objects' ground-truth boxes, picked at random" (its expected gIoU) and "the
box around both"; a policy above it must be reading the query.

Outputs in ``--out-dir``: ``grpo_learning.csv`` (one row per evaluation), ``grpo_learning.md`` (gains
per seed, the bar, seconds per step, the command) and ``grpo_learning.png`` (the curves).

Usage::

    nice -n 5 python benchmarks/grpo_learning.py                      # the committed table (3 seeds, levels 0, 1)
    python benchmarks/grpo_learning.py --seeds 0 --levels 0 --steps 40 --out-dir /tmp/gl   # smoke run

Timings are seconds per training step (evaluations excluded), measured in the same process one run
after the other; on a shared machine compare them only as ratios within one table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ARMS = ("grpo", "control", "trl")
BAR_GAIN = 0.10
"""Level 0: GRPO must raise held-out gIoU by at least this over its own start, in every seed."""


def _preset_args(level: int, seed: int, steps: int, eval_every: int, eval_samples: int, output_dir: str, **extra: Any):
    from segzero_agents.presets import parse_args

    argv = [
        "--preset", "tiny-learn", "--seed", str(seed), "--steps", str(steps), "--eval-every", str(eval_every),
        "--eval-samples", str(eval_samples), "--output-dir", output_dir,
        "--dataset-kwargs", json.dumps({"level": level}), "--log-replies-every", "0",
    ]  # fmt: skip
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parse_args(argv)


def run_agent(args: Any) -> dict[str, Any]:
    """Train with the bundled agent; return the evaluation curve and seconds per step."""
    from segzero_agents.grpo import train

    summary = train(args)
    records = [json.loads(line) for line in (Path(args.output_dir) / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["eval/giou"], r["eval/unusable_rate"]) for r in records if "eval/giou" in r]
    steps = [r for r in records if "time/step_s" in r]
    return {
        "curve": curve,
        "step_s": float(np.mean([r["time/step_s"] for r in steps])),
        "train_unusable": [float(r["replies/unusable_rate"]) for r in steps],
        "mean_step_s_summary": summary["mean_step_s"],
    }


def run_trl(args: Any) -> dict[str, Any]:
    """Train the same warm-started policy with TRL's GRPOTrainer on the agent's prompt sequence."""
    import torch
    from accelerate import Accelerator
    from segzero_agents.evaluation import evaluate
    from segzero_agents.grpo import make_envs, make_eval_envs, policy_from_args, run_warm_start, seed_everything
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from segzero_env.integrations.trl import make_reward_funcs

    torch.set_num_threads(args.torch_threads or torch.get_num_threads())
    seed_everything(args.seed)
    accelerator = Accelerator(cpu=True)
    bundle = policy_from_args(args, accelerator.device)
    model, processor = bundle.model, bundle.processor
    if args.init_state_dict:
        model.load_state_dict(torch.load(args.init_state_dict, weights_only=True))
    G, P = args.group_size, args.prompts_per_step  # noqa: N806 - the paper's names
    envs = make_envs(args, P * G, G, args.split, args.dataset, args.data_root)
    all_ids = list(envs.envs[0].dataset.sample_ids)
    if args.warm_start_steps:
        run_warm_start(args, accelerator, model, processor, envs, all_ids)
    envs.close()
    eval_envs = make_eval_envs(args, 1)

    env_kwargs = trl_env_kwargs(args)
    _, dataset = trl_schedule(args, all_ids)
    rewards = make_reward_funcs(args.env_id, **env_kwargs)

    curve = [(0, *_eval(evaluate(model, processor, args, eval_envs)))]
    step_times: list[float] = []

    class EvalAndTime(TrainerCallback):
        def on_step_begin(self, targs: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, targs: Any, state: Any, control: Any, **kw: Any) -> None:
            step_times.append(time.perf_counter() - self.t0)
            if state.global_step % args.eval_every == 0:
                curve.append((state.global_step, *_eval(evaluate(kw["model"], processor, args, eval_envs))))

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=trl_config(args, processor),
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[EvalAndTime()],
    )
    trainer.train()
    eval_envs.close()
    return {"curve": curve, "step_s": float(np.mean(step_times)), "train_unusable": []}


def trl_env_kwargs(args: Any) -> dict[str, Any]:
    """The env settings of the agent's arguments ``args``, as TRL's dataset and reward functions take them."""
    return {
        "image_size": args.image_size,
        "segmenter": args.segmenter,
        "reward": args.reward,
        "prompt_template": args.prompt_template,
        "dataset_kwargs": json.loads(args.dataset_kwargs),
    }


def trl_schedule(args: Any, all_ids: Sequence[str]) -> tuple[list[str], Any]:
    """The agent's prompt schedule over ``args.steps`` steps and TRL's dataset of it, row for row."""
    from segzero_agents.grpo import scheduled_sample_ids

    from segzero_env.integrations.trl import build_grpo_dataset

    p = args.prompts_per_step
    order = [sid for step in range(args.steps) for sid in scheduled_sample_ids(list(all_ids), step, p, 0, 1, args.seed)]
    dataset = build_grpo_dataset(args.env_id, split=args.split, sample_ids=order, **trl_env_kwargs(args))
    return order, dataset


def trl_config(args: Any, processor: Any) -> Any:
    """TRL's ``GRPOConfig`` matching the bundled agent's arguments ``args`` (one CPU process).

    The agent's batch, group size, reply length, sampling (temperature, top-p, no top-k), optimiser
    and clipping, KL coefficient, loss aggregation and advantage scaling; constant learning rate;
    the dataset read in order (it is the agent's prompt schedule); the vision placeholder tokens of
    ``processor`` never sampled (the agent suppresses them too).
    """
    from segzero_agents.rollout import vision_token_ids
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=args.output_dir,
        use_cpu=True,
        bf16=False,
        seed=args.seed,
        max_steps=args.steps,
        per_device_train_batch_size=args.prompts_per_step * args.group_size,
        num_generations=args.group_size,
        max_completion_length=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=0,
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",
        weight_decay=args.weight_decay,
        adam_beta1=args.adam_beta1,
        adam_beta2=args.adam_beta2,
        max_grad_norm=args.max_grad_norm,
        optim="adamw_torch",
        beta=args.kl_coef,
        epsilon=args.clip_eps,
        loss_type=args.loss_aggregation,
        scale_rewards=args.advantage_scaling,
        shuffle_dataset=False,
        # never sample the vision placeholders (the agent suppresses them too)
        generation_kwargs={"suppress_tokens": vision_token_ids(processor)},
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        dataloader_num_workers=0,
    )


def make_warm_start(args: Any, path: Path) -> str:
    """Run the preset's warm start once and save the policy's state dict (shared by every arm of a seed)."""
    import torch
    from accelerate import Accelerator
    from segzero_agents.grpo import make_envs, policy_from_args, run_warm_start, seed_everything

    torch.set_num_threads(args.torch_threads or torch.get_num_threads())
    seed_everything(args.seed)
    accelerator = Accelerator(cpu=True)
    bundle = policy_from_args(args, accelerator.device)
    envs = make_envs(args, args.prompts_per_step * args.group_size, args.group_size, args.split, None, None)
    losses = run_warm_start(
        args, accelerator, bundle.model, bundle.processor, envs, list(envs.envs[0].dataset.sample_ids)
    )
    envs.close()
    torch.save(bundle.model.state_dict(), path)
    print(f"warm start {path.name}: NLL {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)
    return str(path)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One job of the benchmark (a warm start, or one arm of one seed), run in a worker process."""
    args = _preset_args(**job["args"])
    if job["kind"] == "warm":
        return {"path": make_warm_start(args, Path(job["path"]))}
    t0 = time.perf_counter()
    run = run_trl(args) if job["arm"] == "trl" else run_agent(args)
    run["wall_s"] = time.perf_counter() - t0
    return run


def _eval(metrics: dict[str, float]) -> tuple[float, float]:
    return float(metrics["eval/giou"]), float(metrics["eval/unusable_rate"])


def blind_baselines(level: int, image_size: int, eval_samples: int, train_samples: int = 256) -> dict[str, float]:
    """GIoU, on the evaluated val samples, of answers that ignore the image or the query.

    ``constant_box``: one box for every image, the mean ground-truth box of ``train_samples`` train
    samples (what a policy that does not look at the image does best, roughly). From level 1 on,
    ``random_object`` (one of the ground-truth objects' boxes picked at random: its expected gIoU) and
    ``union_box`` (the box around every object): the best a policy can do without reading the query.
    """
    import gymnasium as gym

    import segzero_env  # noqa: F401
    from segzero_env.answers import format_reply

    def make(split: str) -> Any:
        return gym.make(
            "ReasonSegShapes-v0", split=split, image_size=image_size, segmenter="box", dataset_kwargs={"level": level}
        ).unwrapped

    def score(env: Any, sid: str, box: Sequence[float]) -> float:
        env.reset(options={"sample_id": sid})
        return float(env.step(format_reply(box=box, points=[box[:2], box[2:]]))[4]["iou"])

    train = make("train")
    gt_boxes = []
    for sid in list(train.dataset.sample_ids)[:train_samples]:
        gt_boxes.append(train.reset(options={"sample_id": sid})[1]["gt_box"])
    train.close()
    constant = [float(v) for v in np.mean(gt_boxes, axis=0)]
    env = make("val")
    ids = list(env.dataset.sample_ids)[:eval_samples]
    out = {"constant_box": float(np.mean([score(env, sid, constant) for sid in ids]))}
    if level >= 1:
        random_object, union = [], []
        for sid in ids:
            env.reset(options={"sample_id": sid})
            sample = env.current_sample
            sx, sy = image_size / sample.image.shape[1], image_size / sample.image.shape[0]
            boxes = [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in (o["bbox"] for o in sample.meta["objects"])]
            random_object.append(float(np.mean([score(env, sid, box) for box in boxes])))
            around = [
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            ]
            union.append(score(env, sid, around))
        out.update(random_object=float(np.mean(random_object)), union_box=float(np.mean(union)))
    env.close()
    return out


def _gain(curve: Sequence[tuple[int, float, float]]) -> float:
    return curve[-1][1] - curve[0][1]


def write_results(
    rows: list[dict[str, Any]],
    runs: dict[tuple[int, str, int], dict[str, Any]],
    blind: dict[int, dict[str, float]],
    out_dir: Path,
    command: str,
    setup: str,
) -> None:
    """Write ``grpo_learning.csv``, ``.md`` and ``.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "grpo_learning.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    levels = sorted({k[0] for k in runs})
    seeds = sorted({k[2] for k in runs})
    lines = [
        "# Does the bundled GRPO agent learn? (`tiny-learn`, held-out val gIoU)",
        "",
        setup,
        "",
        "```",
        command,
        "```",
        "",
    ]
    for level in levels:
        arms = [a for a in ARMS if any((level, a, s) in runs for s in seeds)]
        lines += [
            f"## Level {level}",
            "",
            "| arm | "
            + " | ".join(f"seed {s}: start -> end (gain)" for s in seeds)
            + " | mean gain | unusable start -> end | s / step |",
            "|---" * (len(seeds) + 4) + "|",
        ]
        for arm in arms:
            cells, gains, unusable, step_s = [], [], [], []
            for s in seeds:
                run = runs.get((level, arm, s))
                if run is None:
                    cells.append("not run")
                    continue
                c = run["curve"]
                gains.append(_gain(c))
                unusable.append((c[0][2], c[-1][2]))
                step_s.append(run["step_s"])
                cells.append(f"{c[0][1]:.3f} -> {c[-1][1]:.3f} ({_gain(c):+.3f})")
            u0, u1 = np.mean([u[0] for u in unusable]), np.mean([u[1] for u in unusable])
            lines.append(
                f"| {arm} | " + " | ".join(cells) + f" | {np.mean(gains):+.3f} | {u0:.2f} -> {u1:.2f} | "
                f"{np.mean(step_s):.2f} |"
            )
        lines.append("")
        grpo = [_gain(runs[(level, "grpo", s)]["curve"]) for s in seeds if (level, "grpo", s) in runs]
        control = [_gain(runs[(level, "control", s)]["curve"]) for s in seeds if (level, "control", s) in runs]
        trl = [_gain(runs[(level, "trl", s)]["curve"]) for s in seeds if (level, "trl", s) in runs]
        if level == 0 and grpo:
            every = all(g >= BAR_GAIN for g in grpo)
            lines.append(
                f"- GRPO gain >= +{BAR_GAIN:.2f} in every seed: **{'yes' if every else 'no'}** "
                f"(gains {', '.join(f'{g:+.3f}' for g in grpo)})."
            )
            if control:
                ok = np.mean(control) <= np.mean(grpo) / 3
                lines.append(
                    f"- Control gain at most a third of GRPO's: **{'yes' if ok else 'no'}** "
                    f"({np.mean(control):+.3f} vs {np.mean(grpo):+.3f} / 3 = {np.mean(grpo) / 3:+.3f})."
                )
            u = [
                (runs[(level, "grpo", s)]["curve"][0][2], runs[(level, "grpo", s)]["curve"][-1][2])
                for s in seeds
                if (level, "grpo", s) in runs
            ]
            kept = all(b <= a for a, b in u)
            lines.append(f"- Unusable-reply rate (val, greedy) does not rise: **{'yes' if kept else 'no'}**.")
        if trl and grpo:
            t_agent = np.mean([runs[(level, "grpo", s)]["step_s"] for s in seeds if (level, "grpo", s) in runs])
            t_trl = np.mean([runs[(level, "trl", s)]["step_s"] for s in seeds if (level, "trl", s) in runs])
            lines.append(
                f"- Bundled agent vs TRL: mean gain {np.mean(grpo):+.3f} vs {np.mean(trl):+.3f}; "
                f"seconds per step {t_agent:.2f} vs {t_trl:.2f} (TRL / agent = {t_trl / t_agent:.2f})."
            )
        end = [runs[(level, "grpo", s)]["curve"][-1][1] for s in seeds if (level, "grpo", s) in runs]
        if level in blind and end:  # the comparisons are about the trained GRPO policy: none without its arm
            b = blind[level]
            above = np.mean(end) > b["constant_box"]
            lines.append(
                f"- Image-blind answer (the mean train box for every image): {b['constant_box']:.3f}. "
                f"Trained GRPO policy {np.mean(end):.3f}: "
                f"{'above it (it localises)' if above else 'not above it (no localisation beyond a fixed box)'}."
            )
            if "random_object" in b:
                best = max(b["random_object"], b["union_box"])
                lines.append(
                    f"- Query-blind answers: one of the two objects at random {b['random_object']:.3f}, the box "
                    f"around both {b['union_box']:.3f}; best {best:.3f}. Trained GRPO policy {np.mean(end):.3f}: "
                    f"{'beats it (uses the query)' if np.mean(end) > best else 'does not beat it'}."
                )
        lines.append("")
    (out_dir / "grpo_learning.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(levels), figsize=(6 * len(levels), 4), squeeze=False)
    colours = {"grpo": "tab:blue", "control": "tab:grey", "trl": "tab:orange"}
    for ax, level in zip(axes[0], levels, strict=True):
        for arm in ARMS:
            curves = [runs[(level, arm, s)]["curve"] for s in seeds if (level, arm, s) in runs]
            if not curves:
                continue
            steps = [p[0] for p in curves[0]]
            values = np.array([[p[1] for p in c] for c in curves])
            mean = values.mean(axis=0)
            ax.plot(steps, mean, label=f"{arm} ({len(curves)} seeds)", color=colours[arm])
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=colours[arm], alpha=0.2)
        b = blind.get(level, {})
        if "constant_box" in b:
            ax.axhline(b["constant_box"], ls=":", color="k", lw=1, label="image-blind (mean train box)")
        if "random_object" in b:
            ax.axhline(max(b["random_object"], b["union_box"]), ls="--", color="k", lw=1, label="best query-blind")
        ax.set_title(f"ReasonSegShapes level {level}: held-out val gIoU")
        ax.set_xlabel("GRPO step")
        ax.set_ylabel("gIoU (greedy)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "grpo_learning.png", dpi=100)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--level1-arms", nargs="+", default=["grpo"], choices=ARMS, help="Arms run on level 1.")
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the preset's).")
    parser.add_argument("--eval-every", type=int, default=None, help="Steps between evaluations (preset's).")
    parser.add_argument("--eval-samples", type=int, default=None, help="Held-out val samples scored (preset's).")
    parser.add_argument("--warm-start-steps", type=int, default=None, help="Warm-start steps (preset's).")
    parser.add_argument("--workers", type=int, default=4, help="Runs in parallel (one torch thread each).")
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--runs-dir", default=None, help="Where run folders go (default: a temporary folder).")
    ns = parser.parse_args(argv)
    from segzero_agents.presets import PRESETS

    preset = PRESETS["tiny-learn"]
    steps = ns.steps or preset["steps"]
    eval_every = ns.eval_every or preset["eval_every"]
    eval_samples = ns.eval_samples or preset["eval_samples"]
    runs_dir = Path(ns.runs_dir or tempfile.mkdtemp(prefix="grpo_learning_"))
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--runs-dir" in shown:  # where the scratch folders went is no part of the result
        at = shown.index("--runs-dir")
        del shown[at : at + 2]
    command = " ".join(["python benchmarks/grpo_learning.py", *shown])
    setup = (
        f"Preset `tiny-learn`, {steps} GRPO steps of {preset['prompts_per_step']} prompts x "
        f"{preset['group_size']} replies, lr {preset['learning_rate']}, box segmenter, {eval_samples} held-out "
        f"val samples scored every {eval_every} steps (greedy replies, LISA gIoU). "
        f"{platform.machine()}, {os.cpu_count()} CPUs shared with other jobs, one torch thread per run."
    )

    rows: list[dict[str, Any]] = []
    runs: dict[tuple[int, str, int], dict[str, Any]] = {}
    blind = {lvl: blind_baselines(lvl, preset["image_size"], eval_samples) for lvl in ns.levels}
    common = {"steps": steps, "eval_every": eval_every, "eval_samples": eval_samples}
    warm_extra = {} if ns.warm_start_steps is None else {"warm_start_steps": ns.warm_start_steps}
    warm_jobs = {
        (level, seed): {
            "kind": "warm",
            "path": str(runs_dir / f"warm_L{level}_s{seed}.pt"),
            "args": {"level": level, "seed": seed, "output_dir": str(runs_dir / "warm"), **common, **warm_extra},
        }
        for level in ns.levels
        for seed in ns.seeds
    }
    jobs = {}
    for level in ns.levels:
        for seed in ns.seeds:
            for arm in ns.arms if level == 0 else ns.level1_arms:
                extra: dict[str, Any] = {"warm_start_steps": 0, "init_state_dict": warm_jobs[(level, seed)]["path"]}
                if arm == "control":
                    extra["shuffle_rewards"] = "true"
                out = str(runs_dir / f"L{level}_{arm}_s{seed}")
                job_args = {"level": level, "seed": seed, "output_dir": out, **common, **extra}
                jobs[(level, arm, seed)] = {"kind": "run", "arm": arm, "args": job_args}

    # warm starts first (level 0 before level 1); each finished warm start releases its arms' runs
    pending = list(warm_jobs)
    with ProcessPoolExecutor(max_workers=ns.workers, mp_context=get_context("spawn")) as pool:
        futures: dict[Any, tuple[str, Any]] = {}

        def submit_warm() -> None:
            key = pending.pop(0)
            futures[pool.submit(run_job, warm_jobs[key])] = ("warm", key)

        for _ in range(min(ns.workers, len(pending))):
            submit_warm()
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                kind, key = futures.pop(future)
                result = future.result()
                if kind == "warm":
                    print(f"warm start level {key[0]} seed {key[1]}: {result['path']}", flush=True)
                    for run_key, job in jobs.items():
                        if (run_key[0], run_key[2]) == key:
                            futures[pool.submit(run_job, job)] = ("run", run_key)
                    if pending:
                        submit_warm()
                    continue
                level, arm, seed = key
                run = runs[key] = result
                for step, giou, unusable in run["curve"]:
                    rows.append(
                        {"level": level, "arm": arm, "seed": seed, "step": step, "val_giou": round(giou, 4),
                         "val_unusable_rate": round(unusable, 4), "step_s": round(run["step_s"], 4),
                         "wall_s": round(run["wall_s"], 1)}
                    )  # fmt: skip
                print(
                    f"level {level} {arm} seed {seed}: gIoU {run['curve'][0][1]:.3f} -> {run['curve'][-1][1]:.3f}, "
                    f"{run['step_s']:.2f} s/step, {run['wall_s']:.0f} s",
                    flush=True,
                )
                rows.sort(key=lambda r: (r["level"], ARMS.index(r["arm"]), r["seed"], r["step"]))
                write_results(rows, dict(sorted(runs.items())), blind, Path(ns.out_dir), command, setup)


if __name__ == "__main__":
    main()

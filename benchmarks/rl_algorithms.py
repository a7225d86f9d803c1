"""Stable-Baselines3 algorithms on ReasonSegShapes-v0: a reference table of mask IoU after a fixed step budget.

Each run trains one algorithm with one seed on one difficulty level of the synthetic set, through
:func:`segzero_env.wrappers.make_sb3_env` (image resized for a CNN, query as a bag of words, an 8-number
action turned into a well-formed reply, the ``box`` segmenter so a step costs milliseconds). Every episode
is one step, so this is a contextual bandit: the reward is the immediate mask-IoU reward and the discount
factor plays no part. During training the deterministic policy is scored at evenly spaced checkpoints on a
fixed set of ``val`` samples (the learning curve); the last checkpoint is the table's number.

Baselines, scored on the same samples through the same action wrapper:

- ``random``: uniform actions in ``[-1, 1]^8``;
- ``zero-action``: the all-zero action, a centred box half the frame wide (where a deterministic policy with a
  zero-mean head starts; beating it means the policy localises, not just learns a good constant box);
- ``oracle``: the ground-truth box and points encoded as an action, the ceiling the ``box`` segmenter and
  whole-pixel coordinates allow (a box covers more than a circle or a triangle, so it is below 1).

Outputs (in ``--out-dir``): ``rl_algorithms.csv`` (one row per checkpoint: ``algo, level, seed, steps,
mean_iou, ...``, ``final`` marking the table's row), ``rl_algorithms.md`` (mean and std over seeds per
algorithm and level, the exact command) and ``rl_algorithms.png`` (IoU against steps, mean and std band).

Usage::

    python benchmarks/rl_algorithms.py --budget small --workers 2     # the committed table, ~25 min on 2 cores
    python benchmarks/rl_algorithms.py --budget tiny --seeds 1        # smoke test, ~2 min
    python benchmarks/rl_algorithms.py --algos PPO,A2C --levels 0 --steps 50000 --out-dir /tmp/rl

Any algorithm class that ``stable_baselines3`` (or ``sb3_contrib``, when installed) exports can be named in
``--algos``; :data:`HYPERPARAMETERS` holds the settings used for the four defaults, others get SB3's defaults.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ENV_ID = "ReasonSegShapes-v0"
BASELINES = ("random", "zero-action", "oracle")


@dataclass(frozen=True)
class Budget:
    """Per-run sizes of one ``--budget`` preset."""

    steps: int
    """Environment steps (= episodes) of training per run."""
    eval_episodes: int
    """``val`` samples each checkpoint is scored on."""
    checkpoints: int
    """Evaluations along training, evenly spaced, the last at ``steps`` (plus one before training)."""


BUDGETS: dict[str, Budget] = {
    "tiny": Budget(steps=1_000, eval_episodes=50, checkpoints=2),
    "small": Budget(steps=6_000, eval_episodes=200, checkpoints=6),
    "medium": Budget(steps=30_000, eval_episodes=300, checkpoints=10),
    "large": Budget(steps=100_000, eval_episodes=500, checkpoints=10),
}


@dataclass(frozen=True)
class Learner:
    """A named table column: an SB3 algorithm with its own observation encoding and policy.

    Plain SB3 class names (``PPO``, ``SAC``, ...) are learners with the defaults below.
    """

    algo: str
    """SB3 (or sb3_contrib) class name."""
    query_encoding: str | None = None
    """Query encoding of this learner's env (``None``: ``--query-encoding``)."""
    query_film: bool = False
    """Use :class:`segzero_env.wrappers.QueryFiLMExtractor` as the policy's features extractor."""
    query_attention: bool = False
    """Use :class:`segzero_env.wrappers.BoxHeadPolicy` with :class:`segzero_env.wrappers.QueryAttentionExtractor`."""
    blank_query: bool = False
    """Replace every query by the same blank encoding (an ablation: what the learner gets from the image alone)."""
    group_size: int = 1
    """Train on groups of this many episodes of one sample with rewards centred per group (GRPO's baseline,
    :func:`segzero_env.wrappers.group_baseline.make_group_vec_env`); 1 = independent episodes."""


LEARNERS: dict[str, Learner] = {
    # The query-conditioned CNN (word embeddings + GRU, FiLM on every conv block, spatial soft-argmax).
    # Trained on groups of 8 episodes of one sample with group-centred rewards (GRPO's baseline): without
    # it the critic must learn each image's expected IoU before the policy gradient says anything.
    "PPO-FiLM": Learner("PPO", query_encoding="token-ids", query_film=True, group_size=8),
    # The same learner with every query blanked: the gap to PPO-FiLM is what reading the query is worth.
    "PPO-FiLM-blank": Learner("PPO", query_encoding="token-ids", query_film=True, blank_query=True, group_size=8),
    # Key vectors from the query's words matched against every pixel, each heat map read out as a box, and
    # a policy whose action starts at that box (so the policy gradient reaches the keys from the start).
    "PPO-Attn": Learner("PPO", query_encoding="token-ids", query_attention=True, group_size=8),
    "PPO-Attn-blank": Learner("PPO", query_encoding="token-ids", query_attention=True, blank_query=True, group_size=8),
}
"""Named variants usable in ``--algos`` besides plain SB3 class names."""

HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    # Short rollouts: every step is a whole episode, so long horizons buy nothing and updates come sooner.
    # log_std_init=-1 (std 0.37): with SB3's default std of 1 most samples land clipped at the frame edges
    # and PPO stayed near IoU 0.11 for 6,000 steps; lr 1e-4 keeps the CNN from collapsing the policy.
    "PPO": {
        "n_steps": 256,
        "batch_size": 64,
        "n_epochs": 4,
        "learning_rate": 1e-4,
        "policy_kwargs": {"log_std_init": -1.0},
    },
    # n_steps is per env: 32 steps x 8 envs = 256 episodes (32 samples x 8 tries) per update. Ten epochs and
    # a linear policy head on the extractor's keypoints: tried on levels 0 and 1 (3,000-4,000 steps, one
    # seed) against 4 epochs, lr 1e-4 / 1e-3, an MLP head, 32x32 images and no groups; only the grouped
    # runs left the zero-action score within that budget.
    "PPO-FiLM": {
        "n_steps": 32,
        "batch_size": 64,
        "n_epochs": 10,
        "learning_rate": 3e-4,
        "policy_kwargs": {"log_std_init": -1.0, "net_arch": {"pi": [], "vf": [64, 64]}},
    },
    # Same rollouts as PPO-FiLM. Tried on level 1 (6,000 steps, seed 0): lr 3e-3 / 6e-3, 1 / 2 / 4 / 8 heads,
    # soft-argmax temperature 3 / 10 / 30, log_std -1.5 / -2, 10 / 20 epochs, normalised features; these
    # settings ended highest (0.25). Slot-style keypoints chosen by the query stayed at 0.15-0.19.
    # What moved it was the untrained box: a flat heat map read as the whole frame (IoU 0.10) spent half the
    # budget shrinking it. Read as the zero action's box (the extractor's size_shrink, IoU 0.16 at the start)
    # seeds 0-2 end at 0.280 / 0.269 / 0.280; a fixed size offset of -1 instead, 0.277 / 0.270 / 0.266
    # (-0.5 / -1.5: 0.267 / 0.253 on seed 0). On top of that offset, seed 0: lr 5e-3 0.230, n_steps 16 0.252,
    # clip_range 0.3 0.263, the image's RGB as extra pixel features 0.263, 3x larger key steps 0.268.
    "PPO-Attn": {
        "n_steps": 32,
        "batch_size": 64,
        "n_epochs": 10,
        "learning_rate": 3e-3,
        "policy_kwargs": {"log_std_init": -1.5},
    },
    "A2C": {"n_steps": 16, "learning_rate": 1e-4, "policy_kwargs": {"log_std_init": -1.0}},
    # Off-policy: a replay buffer as long as the run, a short random warm-up, one gradient step every 4 env
    # steps (keeps a CNN actor and two CNN critics affordable on one core), and one CNN shared by actor and
    # critics, trained by the critic loss only. Tried on level 0 (3,000 steps each): separate CNNs, the
    # entropy coefficient fixed at 0.01, train_freq 1-2 and learning rates 3e-5-3e-4; SAC's deterministic
    # policy stayed at the zero action or fell below it, and TD3's actor saturated at the [-1, 1] bounds
    # (zero-width boxes, IoU 0) once training started.
    "SAC": {
        "batch_size": 64,
        "learning_starts": 250,
        "train_freq": 4,
        "gradient_steps": 1,
        "policy_kwargs": {"share_features_extractor": True},
    },
    "TD3": {
        "batch_size": 64,
        "learning_starts": 500,
        "train_freq": 4,
        "gradient_steps": 1,
        "learning_rate": 1e-4,
        "action_noise_sigma": 0.1,
        "policy_kwargs": {"share_features_extractor": True},
    },
}


@dataclass
class Args:
    """Command-line arguments (each field's docstring is its ``--help``)."""

    algos: str = "PPO,A2C,SAC,TD3"
    """Comma-separated SB3 algorithm class names; the random and oracle baselines are always added."""
    levels: str = "0,1"
    """Comma-separated shapes levels: 0 = one large object (easiest), 1 = two objects told apart by the query,
    2 = three to five objects and reasoning queries."""
    seeds: int = 3
    """Seeds per algorithm and level (first_seed .. first_seed + seeds - 1)."""
    first_seed: int = 0
    """The first seed; with --reuse, more seeds can join an earlier run's (its other seeds are kept)."""
    budget: str = "small"
    """Preset of steps, eval episodes and checkpoints: tiny, small, medium, large."""
    steps: int | None = None
    """Override the budget's training steps per run."""
    eval_episodes: int | None = None
    """Override the budget's eval episodes per checkpoint."""
    image_size: int = 64
    """The env's frame side S (the coordinate frame of the replies)."""
    obs_size: int = 64
    """Side of the image the policy sees (SB3's default CNN needs >= 36)."""
    query_encoding: str = "bag-of-words"
    """Query encoding of the EncodeQuery wrapper: bag-of-words, hashed or token-ids."""
    segmenter: str = "box"
    """Segmenter inside the env; box is milliseconds per step, grabcut is ~10x slower."""
    workers: int = 1
    """Runs in parallel (processes). Use the number of idle cores."""
    torch_threads: int = 1
    """Torch threads per run."""
    out_dir: str = "benchmarks/results"
    """Where the CSV, markdown and plot go."""
    name: str = "rl_algorithms"
    """Base name of the output files."""
    reuse: str = ""
    """CSV of an earlier run with the same budget and env settings: its rows for (algorithm, level, seed) runs this
    run does not redo are kept in the table (and named as reused in the markdown)."""

    @property
    def budget_spec(self) -> Budget:
        """The budget with any overrides applied."""
        base = BUDGETS[self.budget]
        return Budget(
            steps=self.steps if self.steps is not None else base.steps,
            eval_episodes=self.eval_episodes if self.eval_episodes is not None else base.eval_episodes,
            checkpoints=base.checkpoints,
        )


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """Build an argparse parser from :class:`Args` (types and help from the dataclass) and parse ``argv``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    docs = _field_docs()
    for field in dataclasses.fields(Args):
        kind = {"int | None": int, "int": int, "str": str}[str(field.type)]
        flag = f"--{field.name.replace('_', '-')}"
        parser.add_argument(flag, type=kind, default=field.default, help=docs[field.name])
    args = Args(**vars(parser.parse_args(argv)))
    if args.budget not in BUDGETS:
        parser.error(f"--budget must be one of {sorted(BUDGETS)}, got {args.budget!r}")
    if args.seeds < 1 or args.workers < 1 or args.first_seed < 0:
        parser.error("--seeds and --workers must be >= 1 and --first-seed >= 0")
    return args


def _field_docs() -> dict[str, str]:
    # Field docstrings are the help texts, read from this file's source so they cannot drift apart.
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(Args))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(following, ast.Expr):
            docs[node.target.id] = following.value.value  # type: ignore[union-attr]
    return docs


def learner_of(name: str) -> Learner:
    """The :class:`Learner` called ``name``: an entry of :data:`LEARNERS` or a plain SB3 class name."""
    return LEARNERS.get(name, Learner(name))


def env_kwargs(args: Args, level: int, split: str, learner: Learner | None = None) -> dict[str, Any]:
    """Keyword arguments of ``make_sb3_env`` for one level and split (and the learner's query encoding)."""
    encoding = learner.query_encoding if learner is not None and learner.query_encoding else args.query_encoding
    return {
        "image_size": args.image_size,
        "obs_size": args.obs_size,
        "segmenter": args.segmenter,
        "split": split,
        "dataset_kwargs": {"level": level},
        "query_encoding": encoding,
    }


def make_env(args: Args, level: int, split: str, learner: Learner | None = None, **kwargs: Any) -> Any:
    """``make_sb3_env`` for one level, split and learner; a blank-query learner gets every query zeroed."""
    import gymnasium as gym

    from segzero_env.wrappers import make_sb3_env

    env = make_sb3_env(ENV_ID, **env_kwargs(args, level, split, learner), **kwargs)
    if learner is not None and learner.blank_query:
        env = gym.wrappers.TransformObservation(
            env, lambda obs: {**obs, "query": np.zeros_like(obs["query"])}, env.observation_space
        )
    return env


class Evaluator:
    """Scores a deterministic policy on the first ``episodes`` samples of the ``val`` split.

    The eval env builds its query vocabulary from its own split; the training env's vocabulary is passed
    in so both encode a query the same way.
    """

    def __init__(
        self,
        args: Args,
        level: int,
        episodes: int,
        vocabulary: Sequence[str] | None,
        learner: Learner | None = None,
    ) -> None:
        kwargs = {"query_kwargs": {"vocabulary": list(vocabulary)}} if vocabulary is not None else {}
        self.env = make_env(args, level, "val", learner, **kwargs)
        self.episodes = episodes
        observations, self.infos = [], []
        for index in range(episodes):
            obs, info = self.env.reset(options={"index": index})
            observations.append(obs)
            self.infos.append(info)
        self.batch = {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}

    def score(self, actions: np.ndarray) -> dict[str, float]:
        """Step every eval sample with its action; return mean IoU, its std, mean reward and parse failures."""
        ious, rewards, failures = [], [], []
        for index, action in enumerate(actions):
            self.env.reset(options={"index": index})
            _, reward, _, _, info = self.env.step(action)
            ious.append(info["iou"])
            rewards.append(float(reward))
            failures.append(info["parse_failed"])
        return {
            "mean_iou": float(np.mean(ious)),
            "std_iou": float(np.std(ious)),
            "mean_reward": float(np.mean(rewards)),
            "parse_failure_rate": float(np.mean(failures)),
        }

    def policy_actions(self, model: Any) -> np.ndarray:
        """Deterministic actions of an SB3 model for every eval sample, in one batch."""
        actions, _ = model.predict(self.batch, deterministic=True)
        return np.asarray(actions, dtype=np.float32).reshape(self.episodes, -1)

    def oracle_actions(self) -> np.ndarray:
        """The ground-truth box and points of every eval sample, encoded as actions."""
        encode = self.env.get_wrapper_attr("encode_answer")
        return np.stack([encode(info["gt_box"], info["gt_points"]) for info in self.infos])

    def random_actions(self, seed: int) -> np.ndarray:
        """Uniform actions in ``[-1, 1]^8``."""
        return np.random.default_rng(seed).uniform(-1.0, 1.0, (self.episodes, 8)).astype(np.float32)


def resolve_algorithm(name: str) -> type:
    """The SB3 (or sb3_contrib) class called ``name``; raises ``ValueError`` listing where it looked."""
    import stable_baselines3

    found = getattr(stable_baselines3, name, None)
    if found is None:
        try:
            import sb3_contrib

            found = getattr(sb3_contrib, name, None)
        except ImportError:
            pass
    if found is None:
        raise ValueError(f"unknown algorithm {name!r}: not exported by stable_baselines3 (or sb3_contrib)")
    return found


def build_model(name: str, env: Any, seed: int, steps: int) -> Any:
    """The learner ``name`` with :data:`HYPERPARAMETERS` (off-policy replay buffers sized to the run)."""
    import inspect

    learner = learner_of(name)
    algorithm = resolve_algorithm(learner.algo)
    params = dict(HYPERPARAMETERS.get(name, HYPERPARAMETERS.get(name.removesuffix("-blank"), {})))
    sigma = params.pop("action_noise_sigma", None)
    accepted = inspect.signature(algorithm.__init__).parameters
    if sigma is not None:
        from stable_baselines3.common.noise import NormalActionNoise

        params["action_noise"] = NormalActionNoise(np.zeros(8), np.full(8, sigma))
    if "buffer_size" in accepted:
        params.setdefault("buffer_size", steps)
        params["learning_starts"] = min(params.get("learning_starts", 100), steps // 4)
    params = {**params, "policy_kwargs": dict(params.get("policy_kwargs", {}))}  # SB3 mutates policy_kwargs
    policy: Any = "MultiInputPolicy"
    if learner.query_film:
        from segzero_env.wrappers import query_film_policy_kwargs

        extractor_kwargs = params["policy_kwargs"].pop("features_extractor_kwargs", {})
        params["policy_kwargs"].update(query_film_policy_kwargs(**extractor_kwargs))
    if learner.query_attention:
        from segzero_env.wrappers import BoxHeadPolicy, query_attention_policy_kwargs

        extractor_kwargs = params["policy_kwargs"].pop("features_extractor_kwargs", {})
        params["policy_kwargs"].update(query_attention_policy_kwargs(**extractor_kwargs))
        policy = BoxHeadPolicy
    return algorithm(policy, env, seed=seed, device="cpu", verbose=0, **params)


def run_one(args: Args, algo: str, level: int, seed: int) -> list[dict[str, Any]]:
    """Train (or score a baseline) once; return one row per checkpoint."""
    import torch

    torch.set_num_threads(args.torch_threads)
    from stable_baselines3.common.callbacks import BaseCallback

    budget = args.budget_spec
    base = {"algo": algo, "level": level, "seed": seed, "eval_episodes": budget.eval_episodes}
    if algo in BASELINES:
        evaluator = Evaluator(args, level, budget.eval_episodes, vocabulary=())  # baselines ignore the query
        if algo == "oracle":
            actions = evaluator.oracle_actions()
        elif algo == "zero-action":
            actions = np.zeros((budget.eval_episodes, 8), dtype=np.float32)
        else:
            actions = evaluator.random_actions(seed)
        return [{**base, "steps": 0, **evaluator.score(actions), "train_seconds": 0.0, "final": 1}]

    learner = learner_of(algo)
    if learner.group_size > 1:
        from segzero_env.wrappers.group_baseline import make_group_vec_env

        train_env = make_group_vec_env(
            lambda: make_env(args, level, "train", learner, monitor=True), learner.group_size, seed
        )
        vocabulary = train_env.env_method("get_wrapper_attr", "vocabulary", indices=[0])[0]
    else:
        train_env = make_env(args, level, "train", learner, monitor=True)
        train_env.reset(seed=seed)
        vocabulary = train_env.get_wrapper_attr("vocabulary")
    evaluator = Evaluator(args, level, budget.eval_episodes, vocabulary, learner)
    model = build_model(algo, train_env, seed, budget.steps)
    marks = [round(budget.steps * (i + 1) / budget.checkpoints) for i in range(budget.checkpoints)]
    rows: list[dict[str, Any]] = []
    clock = {"train": 0.0, "since": time.process_time()}

    def checkpoint(steps: int) -> None:
        clock["train"] += time.process_time() - clock["since"]
        scores = evaluator.score(evaluator.policy_actions(model))
        rows.append({**base, "steps": steps, **scores, "train_seconds": round(clock["train"], 1), "final": 0})
        clock["since"] = time.process_time()

    class Checkpoints(BaseCallback):
        def _on_step(self) -> bool:
            while marks and self.num_timesteps >= marks[0]:
                checkpoint(marks.pop(0))
            return True

    checkpoint(0)
    model.learn(total_timesteps=budget.steps, callback=Checkpoints())
    while marks:  # algorithms that stop a step short of the budget still report every checkpoint
        checkpoint(marks.pop(0))
    rows[-1]["final"] = 1
    train_env.close()
    return rows


def _run_job(job: tuple[Args, str, int, int]) -> list[dict[str, Any]]:
    args, algo, level, seed = job
    start = time.time()
    rows = run_one(args, algo, level, seed)
    final = rows[-1]
    print(
        f"{algo:>7} level {level} seed {seed}: IoU {final['mean_iou']:.3f} after {final['steps']} steps "
        f"({time.time() - start:.0f} s wall, {final['train_seconds']:.0f} s train CPU)",
        flush=True,
    )
    return rows


def read_reused(args: Args, path: str, redone: set[tuple[str, int, int]]) -> tuple[list[dict[str, Any]], str]:
    """Rows of an earlier run's CSV whose (algo, level, seed) this run does not redo, and that run's command.

    Raises:
        ValueError: A kept run used another step budget or number of eval episodes than this one.
    """
    budget = args.budget_spec
    kept = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = {
                key: (float(value) if key in FLOAT_COLUMNS else int(value) if key in INT_COLUMNS else value)
                for key, value in raw.items()
            }
            if (row["algo"], row["level"], row["seed"]) in redone:
                continue
            trained = row["algo"] not in BASELINES
            if row["eval_episodes"] != budget.eval_episodes or (
                trained and row["final"] and row["steps"] != budget.steps
            ):
                raise ValueError(
                    f"{path}: {row['algo']} level {row['level']} used {row['steps']} steps and {row['eval_episodes']} "
                    f"eval episodes, this run {budget.steps} and {budget.eval_episodes}; rerun it instead of reusing it"
                )
            kept.append(row)
    command = "unknown"
    markdown = os.path.splitext(path)[0] + ".md"
    if os.path.isfile(markdown):
        with open(markdown) as handle:
            for line in handle:
                if line.startswith("Command: `"):
                    command = line.strip()[len("Command: `") : -1]
                    break
    return kept, command


FLOAT_COLUMNS = ("mean_iou", "std_iou", "mean_reward", "parse_failure_rate", "train_seconds")
INT_COLUMNS = ("level", "seed", "steps", "eval_episodes", "final")


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds of each (level, algo)'s final IoU, levels then algorithms in order of first run."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["final"]:
            groups.setdefault((row["level"], row["algo"]), []).append(row)
    table = []
    for (level, algo), group in sorted(groups.items(), key=lambda item: item[0][0]):
        ious = np.array([r["mean_iou"] for r in group])
        table.append(
            {
                "level": level,
                "algo": algo,
                "steps": int(group[0]["steps"]),
                "mean_iou": float(ious.mean()),
                "std_iou": float(ious.std(ddof=1)) if len(ious) > 1 else 0.0,
                "seeds": len(group),
                "train_seconds": float(np.mean([r["train_seconds"] for r in group])),
            }
        )
    return table


def write_csv(rows: Sequence[dict[str, Any]], path: str) -> None:
    """All checkpoints, one row each."""
    columns = ["algo", "level", "seed", "steps", "mean_iou", "std_iou", "mean_reward", "parse_failure_rate"]
    columns += ["eval_episodes", "train_seconds", "final"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: (round(v, 4) if isinstance(v, float) else v) for key, v in row.items()})


def write_markdown(
    args: Args,
    table: Sequence[dict[str, Any]],
    path: str,
    command: str,
    wall: float,
    reused: Sequence[tuple[str, int, str]] = (),
    reused_command: str = "",
) -> None:
    """The table, the margins per level, and how the numbers were made (and which rows an earlier run made)."""
    budget = args.budget_spec
    lines = [
        "# SB3 algorithms on ReasonSegShapes-v0",
        "",
        f"Command: `{command}`",
        "",
        f"Budget `{args.budget}`: {budget.steps} training steps (= episodes) per run, scored on the first "
        f"{budget.eval_episodes} `val` samples with the deterministic policy. Env: image_size={args.image_size}, "
        f"policy image {args.obs_size}x{args.obs_size}, query `{args.query_encoding}`, segmenter `{args.segmenter}`, "
        "reward preset `mask-iou` (think + answer format + mask IoU; the action wrapper always writes a "
        "well-formed reply, so only the IoU varies). One step per episode: a contextual bandit. "
        f"IoU is the LISA per-sample mask IoU. Mean and sample std over seeds. {args.workers} worker(s), "
        f"{args.torch_threads} torch thread(s) each, on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}); total wall time {wall / 60:.1f} min. "
        "`train s` is the CPU seconds of one run's training (evaluation excluded).",
        "",
    ]
    if reused:
        pairs = ", ".join(f"{algo} (level {level}, seeds {seeds})" for algo, level, seeds in reused)
        lines += [
            f"Rows reused from an earlier run with the same budget and env settings (`{args.reuse}`, made by "
            f"`{reused_command}`), not rerun here: {pairs}. The wall time above is this run's only.",
            "",
        ]
    lines += [
        "| level | algo | steps | mean IoU | std | seeds | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        lines.append(
            f"| {row['level']} | {row['algo']} | {row['steps']} | {row['mean_iou']:.3f} | {row['std_iou']:.3f} "
            f"| {row['seeds']} | {row['train_seconds']:.0f} |"
        )
    lines.append("")
    for level in sorted({row["level"] for row in table}):
        learners = [r for r in table if r["level"] == level and r["algo"] not in BASELINES]
        baseline = {r["algo"]: r["mean_iou"] for r in table if r["level"] == level and r["algo"] in BASELINES}
        if learners and "random" in baseline:
            best = max(learners, key=lambda r: r["mean_iou"])
            margin = best["mean_iou"] - baseline["random"]
            line = (
                f"- Level {level}: best learner {best['algo']} {best['mean_iou']:.3f} vs random "
                f"{baseline['random']:.3f}: margin {margin:+.3f} mean IoU (target +0.2 on the easy level)"
            )
            if "zero-action" in baseline:
                line += f"; vs the zero-action box {best['mean_iou'] - baseline['zero-action']:+.3f}"
            lines.append(line + ".")
        by_algo = {r["algo"]: r for r in learners}
        for algo, row in by_algo.items():
            ablation = by_algo.get(f"{algo}-blank")
            if ablation is None or "zero-action" not in baseline:
                continue
            lines.append(
                f"- Level {level}, does {algo} read the query? {row['mean_iou']:.3f} vs zero-action "
                f"{baseline['zero-action']:.3f} ({row['mean_iou'] - baseline['zero-action']:+.3f}, target +0.10 on "
                f"level 1) and vs the same learner with the query blanked {ablation['mean_iou']:.3f} "
                f"({row['mean_iou'] - ablation['mean_iou']:+.3f})."
            )
    lines += [
        "",
        f"Learning curves: `{args.name}.png`; every checkpoint: `{args.name}.csv`.",
        "",
        "Hyperparameters (SB3 defaults otherwise; `MultiInputPolicy`: NatureCNN on the image + MLP on the query, "
        "unless the learner says otherwise):",
        "",
    ]
    for algo in dict.fromkeys(r["algo"] for r in table if r["algo"] not in BASELINES):
        learner = learner_of(algo)
        extra = ""
        if learner != Learner(algo):
            extra = (
                f" ({learner.algo}; query `{learner.query_encoding or args.query_encoding}`"
                + ("; `QueryFiLMExtractor`" if learner.query_film else "")
                + (
                    "; `BoxHeadPolicy` + `QueryAttentionExtractor` (`query_attention_policy_kwargs()`)"
                    if learner.query_attention
                    else ""
                )
                + ("; every query blanked (zeros)" if learner.blank_query else "")
                + (
                    f"; groups of {learner.group_size} tries per sample, rewards centred per group"
                    if learner.group_size > 1
                    else ""
                )
                + ")"
            )
        params = HYPERPARAMETERS.get(algo, HYPERPARAMETERS.get(algo.removesuffix("-blank"), {}))
        lines.append(f"- {algo}{extra}: `{params}`")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def plot_curves(rows: Sequence[dict[str, Any]], path: str) -> None:
    """IoU against steps per level: learners as mean lines with a std band, baselines as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted({row["level"] for row in rows})
    figure, axes = plt.subplots(1, len(levels), figsize=(5.5 * len(levels), 4), squeeze=False)
    for axis, level in zip(axes[0], levels, strict=True):
        level_rows = [r for r in rows if r["level"] == level]
        algos = list(dict.fromkeys(r["algo"] for r in level_rows))
        for algo in algos:
            algo_rows = [r for r in level_rows if r["algo"] == algo]
            if algo in BASELINES:
                value = float(np.mean([r["mean_iou"] for r in algo_rows]))
                style = {"random": "--", "zero-action": "-."}.get(algo, ":")
                axis.axhline(value, linestyle=style, color="grey", label=f"{algo} {value:.2f}")
                continue
            steps = sorted({r["steps"] for r in algo_rows})
            curves = np.array([[r["mean_iou"] for r in algo_rows if r["steps"] == s] for s in steps], dtype=object)
            means = np.array([np.mean(c) for c in curves])
            stds = np.array([np.std(c) for c in curves])
            axis.plot(steps, means, marker="o", markersize=3, label=algo)
            axis.fill_between(steps, means - stds, means + stds, alpha=0.2)
        axis.set_title(f"ReasonSegShapes-v0, level {level}")
        axis.set_xlabel("environment steps (episodes)")
        axis.set_ylabel("mean mask IoU (val)")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    algos = [a for a in args.algos.split(",") if a]
    for algo in algos:
        resolve_algorithm(learner_of(algo).algo)  # fail before any run starts
    levels = [int(level) for level in args.levels.split(",")]
    names = (*algos, *BASELINES)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(args, algo, level, seed) for level in levels for algo in names for seed in seeds]
    command = "python " + " ".join([os.path.relpath(sys.argv[0]), *(sys.argv[1:] if argv is None else argv)])
    old_rows: list[dict[str, Any]] = []
    reused_pairs: list[tuple[str, int, str]] = []
    reused_command = ""
    if args.reuse:  # read first: the outputs may overwrite the reused file
        redone = {(algo, level, seed) for _, algo, level, seed in jobs}
        old_rows, reused_command = read_reused(args, args.reuse, redone)
        reused_seeds: dict[tuple[str, int], list[int]] = {}
        for r in old_rows:
            seeds_of = reused_seeds.setdefault((r["algo"], r["level"]), [])
            if r["seed"] not in seeds_of:
                seeds_of.append(r["seed"])
        reused_pairs = [(a, lv, " ".join(map(str, ss))) for (a, lv), ss in reused_seeds.items()]
    os.makedirs(args.out_dir, exist_ok=True)
    base = os.path.join(args.out_dir, args.name)
    start = time.time()
    done: list[tuple[int, list[dict[str, Any]]]] = []

    def write_outputs(final: bool) -> None:
        # Written after every finished run, so an interrupted table keeps what it has (marked partial).
        ordered = [row for _, result in sorted(done, key=lambda item: item[0]) for row in result]
        rows = sorted(old_rows + ordered, key=lambda r: r["level"])  # stable: reused rows first within a level
        table = summarise(rows)
        write_csv(rows, base + ".csv")
        note = "" if final else f" (partial: {len(done)} of {len(jobs)} runs finished)"
        write_markdown(args, table, base + ".md", command + note, time.time() - start, reused_pairs, reused_command)
        if final:
            plot_curves(rows, base + ".png")

    if args.workers == 1:
        for index, job in enumerate(jobs):
            done.append((index, _run_job(job)))
            write_outputs(final=False)
    else:
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_run_job, job): index for index, job in enumerate(jobs)}
            for future in as_completed(futures):
                done.append((futures[future], future.result()))
                write_outputs(final=False)
    write_outputs(final=True)
    with open(base + ".md") as handle:
        print(handle.read())


if __name__ == "__main__":
    main()

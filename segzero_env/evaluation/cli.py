"""``segzero eval`` and ``segzero score``: the evaluation harness on the command line.

``segzero eval --env ReasonSegShapes-v0 --env-kwargs segmenter=box --policy oracle --limit 50 --out runs/oracle``
scores a policy; ``segzero score --env ... --replies replies.jsonl --out DIR`` scores replies
generated elsewhere (the ``replay`` policy). ``k=v`` values are read as JSON where they parse
(``limit=3``, ``segmenter_kwargs={"model": "tiny"}``, ``flag=true``) and as plain strings otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any


def parse_kwargs(items: Sequence[str] | None, what: str = "--env-kwargs") -> dict[str, Any]:
    """Turn ``["k=v", ...]`` into a dict, reading each value as JSON where it parses.

    >>> parse_kwargs(["split=val", "image_size=840", 'segmenter_kwargs={"model": "tiny"}', "x=a=b"])
    {'split': 'val', 'image_size': 840, 'segmenter_kwargs': {'model': 'tiny'}, 'x': 'a=b'}

    Raises:
        ValueError: An item has no ``=`` or an empty key; the message names the flag.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{what}: {item!r} is not key=value (example: {what} split=val image_size=840)")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="env id, e.g. ReasonSegShapes-v0 or ReasonSeg-v0")
    parser.add_argument(
        "--env-kwargs",
        nargs="*",
        action="extend",
        default=[],
        metavar="K=V",
        help="env keyword arguments; values are JSON where they parse (segmenter=box image_size=840 "
        'segmenter_kwargs=\'{"model": "tiny"}\')',
    )
    parser.add_argument("--out", required=True, help="output folder (results.jsonl, metrics.json, overlays/)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N samples of the split")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument(
        "--save-overlays", type=int, default=0, metavar="K", help="write K overlay pictures and an IoU histogram"
    )
    parser.add_argument("--batch-size", type=int, default=1, help="samples per policy call and per env step")
    parser.add_argument(
        "--metric", choices=("lisa", "seg-zero"), default="lisa", help="IoU definition (default: lisa)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the policy and env resets")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--allow-code",
        action="store_true",
        help="allow 'module:Class' names (policy, segmenter, dataset, env id): they import and RUN that code",
    )


def add_subparser(subparsers: Any) -> None:
    """Add ``eval`` and ``score`` to the ``segzero`` command's subparsers."""
    eval_parser = subparsers.add_parser(
        "eval",
        help="score a policy on a split",
        description="Score a policy (random, full-image, oracle, replay, hf, openai or module:Class) on a split.",
    )
    _common_arguments(eval_parser)
    eval_parser.add_argument(
        "--policy", default=None, help="policy name or module:Class (default: replay when --replies is given)"
    )
    eval_parser.add_argument(
        "--policy-kwargs", nargs="*", action="extend", default=[], metavar="K=V", help="policy keyword arguments"
    )
    eval_parser.add_argument("--replies", default=None, help="JSONL of sample_id/reply lines for the replay policy")
    eval_parser.set_defaults(func=run_eval)

    score_parser = subparsers.add_parser(
        "score",
        help="score replies generated elsewhere",
        description="Score a JSONL file of {sample_id, reply} lines (segzero eval with the replay policy).",
    )
    _common_arguments(score_parser)
    score_parser.add_argument("--replies", required=True, help="JSONL of sample_id/reply lines")
    score_parser.set_defaults(func=run_score, policy="replay", policy_kwargs=[])


def _evaluate(args: argparse.Namespace, policy: str, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    from segzero_env.evaluation.runner import evaluate
    from segzero_env.trust import allow_code

    with allow_code() if args.allow_code else contextlib.nullcontext():
        return evaluate(
            env_id=args.env,
            env_kwargs=parse_kwargs(args.env_kwargs, "--env-kwargs"),
            policy=policy,
            out_dir=args.out,
            limit=args.limit,
            resume=args.resume,
            save_overlays=args.save_overlays,
            batch_size=args.batch_size,
            policy_kwargs=policy_kwargs,
            metric_definition=args.metric,
            seed=args.seed,
            progress=not args.no_progress,
        )


def _run(args: argparse.Namespace, policy: str, policy_kwargs: dict[str, Any]) -> int:
    from segzero_env.evaluation.run_folder import RunConflictError
    from segzero_env.evaluation.summary import summary_table
    from segzero_env.policies.openai_policy import ServerUnreachableError
    from segzero_env.trust import CodeNotAllowedError

    try:
        metrics = _evaluate(args, policy, policy_kwargs)
    except (FileExistsError, FileNotFoundError, ServerUnreachableError, CodeNotAllowedError, RunConflictError) as err:
        # expected, user-fixable conditions: a one-line message instead of a traceback
        print(f"segzero {args.command}: error: {err}", file=sys.stderr)
        return 1
    print(summary_table(metrics))
    stats = metrics.get("policy_stats") or {}
    if stats.get("missing_replies"):
        print(f"replies missing from {policy_kwargs.get('replies')}: {stats['missing_replies']} (scored as unusable)")
    print(f"results: {args.out}/results.jsonl  metrics: {args.out}/metrics.json")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Handle ``segzero eval``."""
    policy_kwargs = parse_kwargs(args.policy_kwargs, "--policy-kwargs")
    policy = args.policy or ("replay" if args.replies else None)
    if policy is None:
        raise SystemExit("segzero eval: give --policy NAME (random, oracle, hf, openai, ...) or --replies FILE")
    if args.replies:
        if policy != "replay":
            raise SystemExit(f"segzero eval: --replies goes with the replay policy, not {policy!r}")
        policy_kwargs["replies"] = args.replies
    return _run(args, policy, policy_kwargs)


def run_score(args: argparse.Namespace) -> int:
    """Handle ``segzero score`` (``eval`` with the replay policy)."""
    return _run(args, "replay", {"replies": args.replies})

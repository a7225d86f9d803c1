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
import re
import sys
from collections.abc import Sequence
from typing import Any


def parse_kwargs(items: Sequence[str] | None, what: str = "--env-kwargs") -> dict[str, Any]:
    """Turn ``["k=v", ...]`` into a dict, reading each value as JSON where it parses.

    >>> parse_kwargs(["split=val", "image_size=840", 'segmenter_kwargs={"model": "tiny"}', "x=a=b"])
    {'split': 'val', 'image_size': 840, 'segmenter_kwargs': {'model': 'tiny'}, 'x': 'a=b'}
    >>> parse_kwargs(["prompt_template={query}? answer in JSON"])
    {'prompt_template': '{query}? answer in JSON'}
    >>> parse_kwargs(["dataset_kwargs={level:3}"])
    Traceback (most recent call last):
    ...
    ValueError: --env-kwargs dataset_kwargs: '{level:3}' is not JSON (...); did you mean dataset_kwargs='{"level": 3}'?

    Raises:
        ValueError: An item has no ``=`` or an empty key, or a value written as a JSON object or
            list (``{...}``, ``[...]``; a prompt text with a ``{query}`` slot is text) does not
            parse; the message names the flag and the key.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{what}: {item!r} is not key=value (example: {what} split=val image_size=840)")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError as err:
            if _looks_like_json(raw):
                raise ValueError(_bad_json(what, key, raw, err)) from None
            out[key] = raw
    return out


def _looks_like_json(raw: str) -> bool:
    from segzero_env.prompts import QUERY_SLOT

    text = raw.strip()
    bracketed = (text[:1], text[-1:]) in (("{", "}"), ("[", "]"))
    return bracketed and QUERY_SLOT not in text


def _bad_json(what: str, key: str, raw: str, err: json.JSONDecodeError) -> str:
    """The message for a ``{...}`` / ``[...]`` value that is not JSON, with a quoted guess when one parses."""
    message = f"{what} {key}: {raw!r} is not JSON ({err.msg} at character {err.pos})"
    quoted = re.sub(r"([{,]\s*)([A-Za-z_][\w.+-]*)\s*:", r'\1"\2": ', raw.replace("'", '"'))
    try:
        return f"{message}; did you mean {key}='{json.dumps(json.loads(quoted))}'?"
    except json.JSONDecodeError:
        return f'{message}; write keys and strings in double quotes: {key}=\'{{"name": "value"}}\''


def _common_arguments(parser: argparse.ArgumentParser, names: dict[str, list[str]]) -> None:
    parser.add_argument("--env", required=True, help="env id, e.g. ReasonSegShapes-v0 or ReasonSeg-v0")
    parser.add_argument(
        "--env-kwargs",
        nargs="*",
        action="extend",
        default=[],
        metavar="K=V",
        help="env keyword arguments; values are JSON where they parse (segmenter=box image_size=840 "
        'segmenter_kwargs=\'{"model": "tiny"}\' dataset_kwargs=\'{"level": 3}\'). '
        f"segmenter: {', '.join(names['segmenter'])}; reward: {', '.join(names['reward'])}; "
        f"dataset: {', '.join(names['dataset'])}",
    )
    parser.add_argument("--out", required=True, help="output folder (results.jsonl, metrics.json, overlays/)")
    parser.add_argument(
        "--limit", type=int, default=None, help="score only the first N samples of the split (or of the replies)"
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument(
        "--save-overlays", type=int, default=0, metavar="K", help="write K overlay pictures and an IoU histogram"
    )
    parser.add_argument("--batch-size", type=int, default=1, help="samples per policy call and per env step")
    parser.add_argument("--metric", choices=("lisa", "seg-zero"), default="lisa", help="IoU definition (default: lisa)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the policy and env resets")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--allow-code",
        action="store_true",
        help="allow 'module:Class' names (policy, segmenter, dataset, env id): they import and RUN that code",
    )


def add_subparser(subparsers: Any) -> None:
    """Add ``eval`` and ``score`` to the ``segzero`` command's subparsers."""
    from segzero_env.evaluation.cli_names import registered_names

    names = registered_names()
    policies = ", ".join(names["policy"])
    eval_parser = subparsers.add_parser(
        "eval",
        help="score a policy on a split",
        description=f"Score a policy ({policies}, or module:Class with --allow-code) on a split.",
    )
    _common_arguments(eval_parser, names)
    eval_parser.add_argument(
        "--policy",
        default=None,
        help=f"policy: {policies}, or module:Class with --allow-code (default: replay when --replies is given)",
    )
    eval_parser.add_argument(
        "--policy-kwargs", nargs="*", action="extend", default=[], metavar="K=V", help="policy keyword arguments"
    )
    eval_parser.add_argument("--replies", default=None, help="JSONL of sample_id/reply lines for the replay policy")
    _whole_split_argument(eval_parser)
    eval_parser.set_defaults(func=run_eval)

    score_parser = subparsers.add_parser(
        "score",
        help="score replies generated elsewhere",
        description="Score a JSONL file of {sample_id, reply} lines (segzero eval with the replay policy).",
    )
    _common_arguments(score_parser, names)
    score_parser.add_argument("--replies", required=True, help="JSONL of sample_id/reply lines")
    _whole_split_argument(score_parser)
    score_parser.set_defaults(func=run_score, policy="replay", policy_kwargs=[])


def _whole_split_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--whole-split",
        action="store_true",
        help="with replies: score every sample of the split, a sample without a reply as unusable "
        "(default: only the samples the replies file names)",
    )


def _evaluate(args: argparse.Namespace, policy: str, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    from segzero_env.evaluation.cli_names import check_command_names
    from segzero_env.evaluation.runner import evaluate
    from segzero_env.trust import allow_code

    env_kwargs = parse_kwargs(args.env_kwargs, "--env-kwargs")
    check_command_names(args.env, policy, env_kwargs)
    sample_ids = None
    if policy == "replay" and policy_kwargs.get("replies") is not None and not args.whole_split:
        from segzero_env.policies.replay import read_replies

        sample_ids = list(read_replies(policy_kwargs["replies"]))  # the samples the file answers
    with allow_code() if args.allow_code else contextlib.nullcontext():
        return evaluate(
            env_id=args.env,
            env_kwargs=env_kwargs,
            policy=policy,
            out_dir=args.out,
            limit=args.limit,
            sample_ids=sample_ids,
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
    selection = metrics.get("sample_selection")
    if selection:
        print(f"scored the samples named in {policy_kwargs.get('replies')} (--whole-split scores the whole split)")
        if selection["not_in_split"]:
            print(
                f"left out {selection['not_in_split']} sample ids that are not in this split "
                f"(first: {selection['not_in_split_examples'][0]!r})"
            )
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

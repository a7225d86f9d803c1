"""The ``segzero`` command. Each subcommand lives in its own module and adds its own parser."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: list[str] = [
    # Each entry is "module:function"; the function takes argparse's subparsers object and adds
    # one or more subcommands whose handlers are stored as the ``func`` default.
    "segzero_env.evaluation.cli:add_subparser",
    "segzero_env.datasets.check:add_subparser",
    "segzero_env.service.cli:add_subparser",
]


DEBUG_FLAG = "--debug"
"""Accepted anywhere on the line: a failing command shows its traceback instead of one line."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="segzero", description="Reasoning-segmentation environments: tools.")
    parser.add_argument(
        DEBUG_FLAG, action="store_true", help="show the traceback when a command fails (accepted anywhere on the line)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for target in SUBCOMMANDS:
        module_name, function = target.split(":", 1)
        getattr(importlib.import_module(module_name), function)(subparsers)
    return parser


def error_line(err: BaseException) -> str:
    """One line for a failed command: the error's own message (they name what is wrong and what to do).

    >>> error_line(ValueError("--policy 'oracel' is not a policy"))
    "--policy 'oracel' is not a policy"
    >>> error_line(KeyError("sample_id"))
    "KeyError: 'sample_id' (--debug shows the traceback)"
    """
    message = str(err).strip() or type(err).__name__
    if isinstance(err, (ValueError, TypeError, OSError)):
        return message
    # an unexpected kind of error: maybe a bug, so say where to find out more
    return f"{type(err).__name__}: {message} (--debug shows the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``segzero`` command line; returns the exit status.

    A command that fails prints ``segzero COMMAND: error: ...`` on stderr and returns 1; with
    ``--debug`` anywhere on the line the exception propagates with its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [a for a in argv if a != DEBUG_FLAG]
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except Exception as err:  # noqa: BLE001 - a user's mistake gets one line; --debug shows the traceback
        if debug:
            raise
        print(f"segzero {args.command}: error: {error_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

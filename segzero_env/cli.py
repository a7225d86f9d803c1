"""The ``segzero`` command. Each subcommand lives in its own module and adds its own parser."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

SUBCOMMANDS: list[str] = [
    # Each entry is "module:function"; the function takes argparse's subparsers object and adds
    # one or more subcommands whose handlers are stored as the ``func`` default.
    "segzero_env.evaluation.cli:add_subparser",
    "segzero_env.datasets.check:add_subparser",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="segzero", description="Reasoning-segmentation environments: tools.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for target in SUBCOMMANDS:
        module_name, function = target.split(":", 1)
        getattr(importlib.import_module(module_name), function)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``segzero`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

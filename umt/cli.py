"""The `umt` command line: the dispatcher. Each subcommand lives in umt/commands/<verb>.py as
add(subparsers) and run(args), a thin layer over the library; flags several commands share
are in umt/commands/flags.py."""

from __future__ import annotations

import argparse
import os
import sys

from umt.errors import UserError

INTERRUPTED = 130  # the exit status of a program ended by Ctrl-C


def run(argv: list[str] | None = None) -> None:
    """The program's entry point (the `umt` command, python -m umt, train.py, translate.py)."""
    status = main(argv)
    if status == INTERRUPTED:
        # Leave at once: outputs are already cleaned up (atomic writes), and on the way out of
        # an interpreter that ran generation threads, native thread pools can abort (SIGABRT).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    raise SystemExit(status)


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports torch (the presets): Ctrl-C can land here
    except KeyboardInterrupt:
        print("umt: interrupted", file=sys.stderr)
        return INTERRUPTED
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UserError as exc:
        print(f"umt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"umt {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    from umt.commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="umt", description="Universal music translation: data, training, translation."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add(subparsers)
    return parser

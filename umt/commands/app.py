"""`umt app`: translate in the browser (a Gradio page; umt.app)."""

from __future__ import annotations

import argparse
from pathlib import Path

from umt.commands import flags
from umt.errors import UserError


def add(commands) -> None:
    p = commands.add_parser(
        "app",
        help="a page for translating in the browser",
        description="Serves a page (Gradio) where a file is dropped or recorded, translated into the chosen "
        "instruments and heard, downloaded and seen as spectrograms beside the input. It listens on 127.0.0.1 "
        "unless --host says otherwise; every file it writes stays in one temporary folder, deleted when it stops.",
    )
    p.add_argument("--model", type=Path, help="a model file or run folder (default: the shipped model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0: all)")
    p.add_argument("--port", type=int, default=7860, help="(default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="the longest input the page takes, in seconds (default: %(default)s)")  # fmt: skip
    p.add_argument("--probes", type=Path, help="a folder of probe files (umt probe train): the page offers steering")
    p.add_argument("--work", type=Path, help="where its temporary folder goes (default: the system's)")
    flags.device_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from umt.app import serve
    from umt.checkpoint import DEFAULT_MODEL

    if not 1 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: choose 1 to 65535")
    if args.max_seconds <= 0:
        raise UserError(f"--max-seconds {args.max_seconds:g}: must be positive")
    if args.probes is not None and not args.probes.is_dir():
        raise UserError(f"--probes {args.probes}: not a folder")
    if args.work is not None and not args.work.is_dir():
        raise UserError(f"--work {args.work}: not a folder")
    serve(args.model or DEFAULT_MODEL, args.host, args.port, flags.device(args.device), args.max_seconds, args.probes,
          args.work)  # fmt: skip
    return 0

"""`umt prepare`: decode a folder of domains into a training-ready dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from umt import DEFAULT_SAMPLE_RATE
from umt.commands import flags


def add(commands) -> None:
    p = commands.add_parser(
        "prepare",
        help="decode a folder of domains into a training-ready dataset",
        description="SRC holds one subfolder per domain with audio files at any depth. Each file is decoded, "
        "resampled and stored as int16 under OUT, with a manifest and a deterministic train/val/test split.",
    )
    p.add_argument("source", type=Path, metavar="SRC")
    p.add_argument("out", type=Path, metavar="OUT")
    p.add_argument(
        "--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, help="model rate in Hz (default: %(default)s)"
    )
    p.add_argument("--split", default="80/10/10", help="train/val/test percentages (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default: %(default)s)")
    p.add_argument("--min-seconds", type=float, default=1.0, help="skip shorter files (default: %(default)s)")
    flags.jobs_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from umt.data.manifest import parse_split
    from umt.data.prepare import format_table, prepare

    manifest = prepare(
        args.source, args.out, args.sample_rate, parse_split(args.split), args.seed, args.min_seconds, args.jobs
    )
    for skipped in manifest.skipped:
        print(f"skipped {skipped['source']}: {skipped['reason']}")
    print(format_table(manifest))
    empty = [d for d in manifest.domains if not manifest.entries(d)]
    if empty:
        print(f"umt prepare: error: no usable audio in domain(s) {', '.join(empty)}", file=sys.stderr)
        return 1
    print(f"prepared {len(manifest.files)} files into {args.out}")
    return 0

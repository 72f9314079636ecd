"""`umt judge train`: the independent domain classifier that judges translations."""

from __future__ import annotations

import argparse
from pathlib import Path

from umt.commands import flags
from umt.errors import UserError


def add(commands) -> None:
    p = commands.add_parser("judge", help="the independent domain classifier that judges translations")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser(
        "train",
        help="train the judge on real audio of prepared datasets",
        description="Trains a small CNN on log-mel spectrograms of the train split of every PREP (the same domains, "
        "e.g. one corpus per soundfont) and reports its accuracy on real audio of each test split, and of "
        "each --holdout corpus it never trained on; writes OUT/judge.pt.",
    )
    t.add_argument("prep", type=Path, metavar="PREP", nargs="+")
    t.add_argument("--holdout", type=Path, action="append", default=[], metavar="PREP",
                   help="a prepared corpus of the same domains to score on only (repeatable)")  # fmt: skip
    t.add_argument("--out", type=Path, required=True, help="folder for judge.pt (and last.pt while it trains)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out (give the same settings)")
    t.add_argument("--steps", type=int, default=600, help="(default: %(default)s)")
    t.add_argument("--batch-size", type=int, default=8, help="crops per domain per step (default: %(default)s)")
    t.add_argument("--test-clips", type=int, default=64, help="test crops per domain (default: %(default)s)")
    t.add_argument("--crop-seconds", type=float, default=2.0, help="length of a training crop (default: %(default)s)")
    t.add_argument("--tilt-db", type=flags.finite, default=0.0,
                   help="random spectral tilt of up to this many dB on training crops (default: %(default)s)")  # fmt: skip
    t.add_argument("--hiss-db", type=flags.finite, default=0.0,
                   help="also learn a class 'hiss': crops with noise from this many dB below their RMS up to 20 dB below "
                        "(0: off; default: %(default)s)")  # fmt: skip
    t.add_argument("--seed", type=int, default=0)
    flags.device_flag(t)
    t.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from umt.judge import HISS_LOUDEST_DB, train_judge

    if args.steps < 1 or args.batch_size < 1 or args.test_clips < 1 or args.crop_seconds <= 0:
        raise UserError("--steps, --batch-size, --test-clips and --crop-seconds must be positive")
    if args.tilt_db < 0:
        raise UserError(f"--tilt-db {args.tilt_db:g}: must not be negative")
    if args.hiss_db and args.hiss_db <= HISS_LOUDEST_DB:
        raise UserError(f"--hiss-db {args.hiss_db:g}: must be 0 (off) or above {HISS_LOUDEST_DB:g}, the loudest hiss")
    scores = train_judge(
        args.prep, args.out, steps=args.steps, batch_per_domain=args.batch_size, seed=args.seed, device=flags.device(args.device),
        test_clips=args.test_clips, crop_seconds=args.crop_seconds, holdout=args.holdout, tilt_db=args.tilt_db,
        hiss_db=args.hiss_db, resume=args.resume,
    )  # fmt: skip
    for kind, corpora in (("test", scores["corpora"]), ("held-out", scores["holdout"])):
        for root, s in corpora.items():
            per_domain = ", ".join(f"{d} {v:.3f}" for d, v in s["per_domain_accuracy"].items())
            hiss = "" if s["hiss_accuracy"] is None else f"; hiss heard as hiss {s['hiss_accuracy']:.3f}"
            print(f"judge accuracy on {kind} {root}: {s['test_accuracy']:.3f} ({per_domain}){hiss}")
    print(f"judge test accuracy {scores['test_accuracy']:.3f}; saved {args.out / 'judge.pt'}")
    return 0

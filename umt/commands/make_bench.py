"""`umt make-bench`: render the paired benchmark corpus (music21 scores through a GM soundfont)."""

from __future__ import annotations

import argparse
from pathlib import Path

from umt import DEFAULT_SAMPLE_RATE
from umt.commands import flags
from umt.errors import UserError


def add(commands) -> None:
    from umt.data.make_bench import DEFAULT_CORPUS, TRAITS

    p = commands.add_parser(
        "make-bench",
        help="render the built-in paired benchmark corpus (music21 scores through a GM soundfont)",
        description="Renders the same pieces from music21's corpus on several General-MIDI instruments "
        "into OUT/<domain>/<piece>.flac with OUT/pairing.json, the layout `umt prepare` reads.",
    )
    p.add_argument("out", type=Path, metavar="OUT", nargs="?")
    p.add_argument(
        "--domains",
        default="piano,violin,cello,flute",
        help="comma-separated instruments (default: %(default)s; --list-instruments shows all)",
    )
    p.add_argument("--list-instruments", action="store_true", help="print the instruments and exit")
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of audio per domain (default: %(default)s)")
    p.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, help="Hz (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of piece choice and variation (default: %(default)s)")
    p.add_argument(
        "--corpus", default=DEFAULT_CORPUS, help="music21 corpus collection or composer (default: %(default)s)"
    )
    p.add_argument("--clip-seconds", type=float, default=20.0, help="longest excerpt per piece (default: %(default)s)")
    p.add_argument("--with-drums", action="store_true", help="add a General-MIDI drum part to every piece")
    p.add_argument(
        "--soundfont", type=Path, help="a General-MIDI .sf2 to render with (default: TimGM6mb.sf2 from pretty_midi)"
    )
    p.add_argument(
        "--trait", choices=list(TRAITS),
        help="render trait pairs for `umt probe train` instead: every piece with the trait into OUT/with/<domain>/ and "
        "without it into OUT/without/<domain>/ (" + "; ".join(f"{k}: {v}" for k, v in TRAITS.items()) + ")",
    )  # fmt: skip
    flags.jobs_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from umt.data.instruments import INSTRUMENTS, parse_instruments
    from umt.data.make_bench import Settings, check_soundfont, make_bench

    if args.list_instruments:
        for name, inst in INSTRUMENTS.items():
            print(f"{name:<16} GM program {inst.program + 1:>3}  MIDI keys {inst.low}-{inst.high}")
        return 0
    if args.out is None:
        raise UserError("OUT is required: the folder to render into")
    if args.minutes <= 0 or args.clip_seconds <= 0:
        raise UserError("--minutes and --clip-seconds must be positive")
    domains = parse_instruments(args.domains)
    soundfont = str(args.soundfont.resolve()) if args.soundfont else ""
    if soundfont:
        check_soundfont(soundfont)
    settings = Settings(args.corpus, args.minutes, args.sample_rate, args.seed, args.clip_seconds, args.with_drums,
                        args.trait or "", soundfont)  # fmt: skip
    pairing = make_bench(args.out, domains, settings, args.jobs)
    minutes = sum(p["seconds"] for p in pairing["pieces"]) / 60
    pairs = f", with and without {args.trait}" if args.trait else ""
    print(
        f"rendered {len(pairing['pieces'])} pieces ({minutes:.2f} min) x {len(domains)} domains{pairs} into {args.out}"
    )
    return 0

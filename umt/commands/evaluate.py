"""`umt evaluate`: score a model's translations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from umt.commands import flags
from umt.errors import UserError


def add(commands) -> None:
    p = commands.add_parser(
        "evaluate",
        help="score a model's translations: target accuracy, chroma similarity, spectral distance, CE",
        description="Translates test-split clips between every pair of domains and writes REPORT/metrics.json, "
        "REPORT/report.md, heatmaps, spectrogram triptychs and the audio of those examples.",
    )
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="a prepared dataset (umt prepare)")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument("--judge", type=Path, help="the judge (JUDGE/judge.pt or JUDGE); without it, no target accuracy")
    p.add_argument("--clips", type=int, default=8, help="clips per source domain (default: %(default)s)")
    p.add_argument("--split", choices=["test", "val"], default="test",
                   help="where the clips come from: test (unseen pieces; report figures) or val (to choose settings by) "
                   "(default: %(default)s)")  # fmt: skip
    p.add_argument("--seconds", type=float, default=4.0, help="length of a clip (default: %(default)s)")
    p.add_argument(
        "--figures", type=int, default=1, help="spectrogram examples per source domain (default: %(default)s)"
    )
    flags.sampling_flags(p)
    p.add_argument("--batch-size", type=int, help="clips decoded at once (default: as many as fit in memory)")
    flags.renderer_flag(p)
    flags.tokens_flag(p)
    flags.device_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from umt.checkpoint import find_checkpoint, load_model
    from umt.data.manifest import Manifest
    from umt.evaluate import evaluate
    from umt.judge import TRUSTED_JUDGE, load_judge
    from umt.report import off_diagonal_means
    from umt.translator import Translator

    if args.clips < 1 or args.seconds <= 0 or (args.batch_size is not None and args.batch_size < 1):
        raise UserError("--clips, --seconds and --batch-size must be positive")
    if args.figures < 0:
        raise UserError("--figures must not be negative")
    device = flags.device(args.device)
    judge = judge_accuracy = None
    if args.judge is not None:
        path = find_checkpoint(args.judge)
        judge, state = load_judge(path, device)
        judge_accuracy = state["test_accuracy"]
        hiss = "" if not judge.cfg.hiss_db else f", hears hiss as hiss {state['hiss_accuracy']:.3f} of the time"
        print(f"judge: {path}, test accuracy on real audio {judge_accuracy:.3f}{hiss}")
        if judge_accuracy < TRUSTED_JUDGE:
            print(f"warning: the judge is right on only {judge_accuracy:.0%} of real test audio (below {TRUSTED_JUDGE:.0%}): "
                  "its target accuracies say little; train it longer (umt judge train --steps)", file=sys.stderr)  # fmt: skip
    translator = Translator(
        load_model(args.model, device), device, args.batch_size, temperature=args.temperature, renderer=args.renderer,
        tokens=args.tokens, flutter=args.flutter,
    )  # fmt: skip
    metrics = evaluate(translator, judge, Manifest.read(args.data), args.out, args.clips, args.seconds, args.figures,
                       judge_accuracy=judge_accuracy, split=args.split)  # fmt: skip
    for domain, n in metrics["clips_per_domain"].items():
        if n < args.clips:
            print(f"note: {domain} has only {n} {args.split} clip(s) of {args.seconds:g} s (asked for {args.clips})")
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'report.md'}")
    for renderer, means in off_diagonal_means(metrics).items():
        shown = ", ".join(f"{key.replace('_', ' ')} {value:.3f}" for key, value in means.items() if value is not None)
        print(f"off the diagonal, {renderer}: {shown}")
    return 0

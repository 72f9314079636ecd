"""`umt export`: a model-only checkpoint for sharing, with renderers, token LMs and sampling added."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from umt.errors import UserError


def add(commands) -> None:
    p = commands.add_parser(
        "export", help="write a model-only checkpoint (no optimiser state) for sharing",
        description="Copies config and weights of a training checkpoint into a smaller file that "
        "`umt translate --model` and `umt evaluate --model` read.",
    )  # fmt: skip
    p.add_argument("checkpoint", type=Path, metavar="CKPT")
    p.add_argument("out", type=Path, metavar="OUT")
    p.add_argument(
        "--renderers-from", type=Path, metavar="CKPT2",
        help="spectral models: take the WaveNet renderers from CKPT2 (e.g. a run with --batch-size 0 trained beside "
        "a frames-only run, one per core)",
    )  # fmt: skip
    p.add_argument(
        "--decoder-from", action="append", default=[], metavar="DOMAIN=CKPT2",
        help="take DOMAIN's whole decoder (frame network and renderer) from CKPT2, a model of the same settings and "
        "encoder, e.g. the model a frames-only fine-tuning started from (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--lm", type=Path, action="append", default=[], metavar="LM",
        help="carry this token LM (an `umt lm train` run or its best.pt, or every LM a model carries) in the model, "
        "for `umt generate` (repeatable: one per mode)",
    )  # fmt: skip
    p.add_argument(
        "--sampling", type=Path, metavar="JSON",
        help='how translation renders each domain by default: {"DOMAIN": {"temperature": T, "flutter": F}, ...} '
        "(experiments/sound/sampling.sh chooses them on the val split); the flags of translate and evaluate override it",
    )  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from umt.checkpoint import export_model

    sampling = None
    if args.sampling is not None:
        try:
            sampling = json.loads(args.sampling.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"--sampling {args.sampling}: cannot read it as JSON ({exc})") from None
    decoders_from = {}
    for item in args.decoder_from:
        domain, _, path = item.partition("=")
        if not domain or not path:
            raise UserError(f"--decoder-from {item}: expected DOMAIN=CKPT2")
        decoders_from[domain] = Path(path)
    out, state = export_model(args.checkpoint, args.out, args.renderers_from, args.lm, sampling, decoders_from)
    renderers = (
        f", renderers from {args.renderers_from} (step {state['renderers_from']['step']})"
        if args.renderers_from
        else ""
    )
    lms = f", token LM {', '.join(state['lm'])}" if state.get("lm") else ""
    decoders = "".join(f", {d}'s decoder from {v['path']}" for d, v in state.get("decoders_from", {}).items())
    print(
        f"wrote {out}: domains {', '.join(state['config']['domains'])}, step {state['step']}{renderers}{decoders}{lms}"
    )
    return 0

"""`umt generate`: continue a prompt with the token LM and render it in a domain."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from umt.commands import flags
from umt.errors import UserError


def add(commands) -> None:
    from umt.lm import MODES

    p = commands.add_parser(
        "generate",
        help="continue a prompt with the token LM and render it in a domain",
        description="Encodes and tokenizes the prompt, continues its tokens by --seconds with the token LM, and "
        "renders the continuation (the prompt before it as context) with the domain's decoder. An existing OUT is "
        "kept unless --overwrite.",
    )
    p.add_argument("--prompt", type=Path, required=True, help="an audio file")
    p.add_argument("--seconds", type=float, required=True, help="length of the continuation")
    p.add_argument("--to", required=True, help="the domain that renders it")
    p.add_argument("-o", "--out", type=Path, required=True, help="output file (.wav or .flac)")
    p.add_argument("--model", type=Path, help="a model with a tokenizer (default: the shipped model)")
    p.add_argument("--lm", type=Path, help="a token LM (umt lm train; default: the one the model carries for --mode)")
    p.add_argument(
        "--mode", choices=MODES, default="parallel", help="which LM the model carries to use (default: %(default)s)"
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="the LM's sampling temperature; 0 = greedy (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    flags.steer_flags(p)
    flags.device_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from umt.audio import load_audio, write_audio
    from umt.checkpoint import DEFAULT_MODEL, load_lm_state, load_model
    from umt.steering import lm_sites
    from umt.tokens import carried_lm, check_fits, continue_prompt, load_lm
    from umt.translator import Translator

    if args.seconds <= 0 or args.temperature < 0:
        raise UserError("--seconds must be positive, --temperature not negative")
    if args.out.suffix.lower() not in (".wav", ".flac"):
        raise UserError(f"-o {args.out}: name a .wav or .flac file")
    if args.out.is_dir():
        raise UserError(f"-o {args.out}: is a folder; name the output file")
    if args.out.exists() and not args.overwrite:
        print(f"{args.out} exists: kept (pass --overwrite to replace it)")
        return 0
    device = flags.device(args.device)
    model_path = args.model or DEFAULT_MODEL
    model = load_model(model_path, device)
    if args.to not in model.cfg.domains:
        raise UserError(f"--to {args.to}: unknown domain; {model_path} has {', '.join(model.cfg.domains)}")
    translator = Translator(model, device, tokens=True)  # refuses a model without a tokenizer
    if args.lm is not None:
        lm = load_lm(load_lm_state(args.lm))
    else:
        lm = carried_lm(model_path, args.mode)
        if lm is None:
            raise UserError(f"{model_path} carries no {args.mode} token LM: pass --lm (train one with `umt lm train`)")
    check_fits(lm, model.cfg)
    # Generation is steered where SMITIN steers it: the LM's attention heads, read and nudged at
    # every step (umt.steering.Steering).
    steering = flags.steering(args, [lm_sites(lm)])
    with steering.applied() if steering else contextlib.nullcontext():
        audio, figures = continue_prompt(translator, lm, load_audio(args.prompt, model.cfg.sample_rate), args.seconds, args.to,
                                         args.temperature, args.seed)  # fmt: skip
    if steering:
        print(
            f"steering: the nudge applied at {steering.nudged_share():.0%} of the steps (the rest stopped by "
            f"self-monitoring), at {steering.mean_gain():.2f} x alpha on average"
        )
    write_audio(args.out, audio, model.cfg.sample_rate)
    print(f"wrote {args.out}: {audio.size / model.cfg.sample_rate:.2f} s in {args.to}; the {lm.cfg.mode} LM made "
          f"{figures['frames']} frames at {figures['frames_per_second']:.0f} frames/s")  # fmt: skip
    return 0

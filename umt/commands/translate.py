"""`umt translate`: translate audio files or folders into the model's domains."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from umt.commands import flags
from umt.errors import UserError


def add(commands) -> None:
    p = commands.add_parser(
        "translate",
        help="translate audio files or folders into the model's domains",
        description="Each input (a file, or a folder searched recursively) is encoded once and rendered in every "
        "target domain as OUT/<domain>/<same relative path>. Existing outputs are kept unless --overwrite, "
        "so an interrupted job resumes; inputs that fail are reported and the exit status is 1. Outputs are mono, "
        "at the model's sample rate (16 kHz for the shipped model) unless --sample-rate.",
    )
    p.add_argument("inputs", nargs="*", type=Path, metavar="INPUT")
    p.add_argument("-o", "--out", type=Path, help="output folder")
    p.add_argument("--model", type=Path, help="a checkpoint (RUN/best.pt, RUN/last.pt; default: the shipped model)")
    p.add_argument("--to", help="comma-separated target domains (default: all of the model's)")
    p.add_argument("--list-domains", action="store_true", help="print the model's domains and exit")
    p.add_argument(
        "--batch-size", type=int,
        help="chunks decoded in parallel (default: as many as 2 GiB of decoder state allows, at most 512)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-seconds", type=float, default=0.5,
        help="seconds of audio a chunk holds; chunks are decoded in parallel (default: %(default)s)",
    )  # fmt: skip
    flags.sampling_flags(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default: %(default)s)")
    flags.renderer_flag(p)
    flags.tokens_flag(p)
    flags.steer_flags(p)
    p.add_argument("--format", choices=["wav", "flac"], default="wav", help="output format (default: %(default)s)")
    p.add_argument("--zero-nonfinite", action="store_true",
                   help="set NaN and infinite input samples to 0 (and report them) instead of refusing the file")  # fmt: skip
    p.add_argument("--sample-rate", type=int, help="resample the outputs to this rate (soxr; default: the model's)")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--shard", default="0/1", help="I/N: translate only shard I (from 0) of N (default: %(default)s)")
    flags.device_flag(p)
    p.add_argument(
        "--precision", choices=["fp32", "bf16"], default="fp32",
        help="arithmetic of generation (default: %(default)s; bf16 was 3-4x slower on the CPUs measured, see the README's Generation speed)",
    )  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from umt.checkpoint import DEFAULT_MODEL, load_model
    from umt.steering import frame_sites
    from umt.translate import check_output_folder, convert, find_jobs, parse_shard, shard, summary
    from umt.translator import Translator

    device = flags.device(args.device)
    if args.model is None:
        if not DEFAULT_MODEL.is_file():
            raise UserError(f"no --model given and no default model at {DEFAULT_MODEL}")
        args.model = DEFAULT_MODEL
    model = load_model(args.model, device)
    domains = model.cfg.domains
    if args.list_domains:
        print("\n".join(domains))
        return 0
    targets = [d.strip() for d in args.to.split(",") if d.strip()] if args.to is not None else list(domains)
    if not targets:
        raise UserError(f"--to {args.to!r}: name at least one domain ({', '.join(domains)})")
    unknown = [d for d in targets if d not in domains]
    if unknown:
        raise UserError(f"--to: unknown domain {', '.join(unknown)}; {args.model} has {', '.join(domains)}")
    if not args.inputs or args.out is None:
        raise UserError("give one or more INPUT files or folders and -o OUT")
    if (args.batch_size is not None and args.batch_size < 1) or args.chunk_seconds <= 0:
        raise UserError("--batch-size and --chunk-seconds must be positive")
    if args.sample_rate is not None and not 1000 <= args.sample_rate <= 384000:
        raise UserError(f"--sample-rate {args.sample_rate}: choose a rate between 1000 and 384000 Hz")
    index, count = parse_shard(args.shard)
    unreadable: list[tuple[Path, str]] = []
    jobs = shard(find_jobs(args.inputs, f".{args.format}", unreadable), index, count)
    steering = flags.steering(
        args, [frame_sites(model, d) for d in targets] if args.steer else []
    )  # flags checked before OUT is made
    check_output_folder(args.out, targets)
    translator = Translator(
        model, device, args.batch_size, args.chunk_seconds, args.temperature, args.seed,
        torch.bfloat16 if args.precision == "bf16" else torch.float32, renderer=args.renderer, tokens=args.tokens,
        flutter=args.flutter,
    )  # fmt: skip
    with steering.applied() if steering else contextlib.nullcontext():
        report = convert(translator, jobs, targets, args.out, args.overwrite, args.sample_rate, args.zero_nonfinite)
    report.failed += unreadable
    if steering:
        print(
            f"steering: the nudge applied at {steering.nudged_share():.0%} of the frames (the rest stopped by "
            f"self-monitoring), at {steering.mean_gain():.2f} x alpha on average"
        )
    print(summary(report))
    return 1 if report.failed else 0

"""`umt tokenizer train | measure | tokens`: a residual-VQ tokenizer of the latent, and how independent its codebooks are."""

from __future__ import annotations

import argparse
from pathlib import Path

from umt.commands import flags
from umt.errors import UserError


def add(commands) -> None:
    from umt.tokens import TOKENIZER_RUN

    p = commands.add_parser(
        "tokenizer", help="a residual-VQ tokenizer of the latent, and how independent its codebooks are"
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser(
        "train",
        help="fit a tokenizer onto a trained model",
        description="Inserts a residual VQ between the encoder and the decoders of MODEL and trains it (its "
        "codebooks and the linear maps around it) through the frozen model: the frame networks' loss on the quantised "
        "latent, the commitment loss and, with --mmd-weight, the independence loss. Writes a run like umt train "
        "(OUT/best.pt is the model with its tokenizer).",
    )
    t.add_argument("prep", type=Path, metavar="PREP")
    t.add_argument("--from", dest="base", type=Path, help="the trained model (a checkpoint or run folder)")
    t.add_argument("--out", type=Path, required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    # defaults of a new run; on --resume, only the flags given change the stored settings
    t.add_argument("--codebooks", type=int, default=4, help="K (default: %(default)s)")
    t.add_argument("--codebook-size", type=int, default=256, help="N codes per codebook (default: %(default)s)")
    t.add_argument(
        "--layers", type=int, default=0,
        help="residual blocks before the quantiser and after it, what the independence loss can reshape with the "
        "encoder frozen (default: %(default)s: a linear map each side)",
    )  # fmt: skip
    t.add_argument(
        "--mmd-weight",
        type=flags.finite,
        help=f"weight of the independence loss (default: {TOKENIZER_RUN['loss_weights']['mmd']})",
    )
    t.add_argument(
        "--no-mmd-delays", action="store_true", help="compare codebooks within a frame, not at the parallel LM's delays"
    )
    t.add_argument(
        "--mmd-macro-batches", type=int,
        help="the independence loss's macro-batch: the latents of this many steps, a term every that many steps "
        "(default: 32, as the paper's code)",
    )  # fmt: skip
    t.add_argument(
        "--tune-decoders", action="store_true",
        help="fine-tune the frame networks to the quantised latent too (by default they stay as they are, so the "
        "model's continuous translations do not change)",
    )  # fmt: skip
    t.add_argument("--steps", type=int, help=f"(default: {TOKENIZER_RUN['steps']})")
    t.add_argument("--batch-size", type=int, help="crops per domain (default: the base run's)")
    t.add_argument(
        "--loss-weight", action="append", default=[], metavar="KIND=W", dest="loss_weights",
        help="the weight of a kind of loss term over the base run's (repeatable; umt train --help lists the kinds)",
    )  # fmt: skip
    t.add_argument("--lr", type=float, help=f"(default: {TOKENIZER_RUN['lr']})")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], help="(default: the base model's run's)")
    flags.device_flag(t)
    t.set_defaults(run=run_train)
    m = actions.add_parser(
        "measure",
        help="mutual information between codebooks and their perplexity, on a split's tokens",
        description="Tokenizes every file of a split and prints the mutual information (bits; Miller-Madow "
        "corrected) between every pair of codebooks, its floor (one stream permuted), the mean over pairs at the "
        "parallel LM's delays too, and each codebook's perplexity.",
    )
    model_and_data(m)
    m.add_argument("--split", default="test", choices=["train", "val", "test"], help="(default: %(default)s)")
    m.add_argument("--json", type=Path, help="also write the figures here")
    flags.device_flag(m)
    m.set_defaults(run=run_measure)
    k = actions.add_parser(
        "tokens",
        help="tokenize a prepared dataset once, for `umt lm train --tokens`",
        description="Tokenizes every file of each split of a prepared dataset with MODEL's tokenizer and writes "
        "the tokens to OUT (a byte a code for codebooks of up to 256), so LM runs need neither the audio nor "
        "the model, nor the minutes of tokenizing at each run and resume.",
    )
    model_and_data(k)
    k.add_argument("-o", "--out", type=Path, required=True, help="the tokens file to write")
    k.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    flags.device_flag(k)
    k.set_defaults(run=run_tokens)


def model_and_data(parser: argparse.ArgumentParser) -> None:
    """--model (with a tokenizer) and --data (a prepared dataset): what the tokens are made from."""
    parser.add_argument("--model", type=Path, required=True, help="a model with a tokenizer")
    parser.add_argument("--data", type=Path, required=True, help="a prepared dataset")


def run_train(args: argparse.Namespace) -> int:
    from umt.tokens import tokenizer_run
    from umt.training.loop import train

    macro = args.mmd_macro_batches
    if (
        args.codebooks < 1 or args.codebook_size < 2 or args.layers < 0 or (args.mmd_weight or 0) < 0
        or (macro is not None and macro < 1)
    ):  # fmt: skip
        raise UserError(
            "--codebooks and --mmd-macro-batches must be positive, --codebook-size at least 2, --layers and "
            "--mmd-weight not negative"
        )
    from umt.losses import parse_weights

    given = {k: getattr(args, k) for k in ("steps", "lr", "precision", "batch_size") if getattr(args, k) is not None}
    weights = parse_weights(args.loss_weights)
    if args.mmd_weight is not None:
        weights["mmd"] = args.mmd_weight
    if weights:
        given["loss_weights"] = weights
    if args.no_mmd_delays:
        given["mmd_delayed"] = False
    if args.mmd_macro_batches is not None:
        given["mmd_macro_batches"] = args.mmd_macro_batches
    options = given
    if not args.resume:
        if args.base is None:
            raise UserError("--from MODEL: name the trained model to fit a tokenizer onto (or --resume a run)")
        options = tokenizer_run(
            args.codebooks, args.codebook_size, args.layers, tune_decoders=args.tune_decoders, given=given
        )
    train(args.prep, args.out, options, args.device, args.resume, None if args.resume else args.base)
    return 0


def run_measure(args: argparse.Namespace) -> int:
    from umt.checkpoint import load_model
    from umt.data.manifest import Manifest
    from umt.fileio import write_json
    from umt.tokens import measure
    from umt.translator import Translator

    device = flags.device(args.device)
    figures = measure(
        Translator(load_model(args.model, device), device, tokens=True), Manifest.read(args.data), args.split
    )
    k = len(figures["perplexity"])
    print(
        f"{figures['frames']} frames of the {args.split} split; mutual information between codebooks (bits), floor in brackets:"
    )
    for i in range(k):
        print(
            "  "
            + "  ".join(
                "   -   " if i == j else f"{figures['mi'][i][j]:.3f} ({figures['floor'][i][j]:.3f})" for j in range(k)
            )
        )
    print(f"mean over pairs {figures['mean_mi']:.3f} bits (floor {figures['mean_floor']:.3f})")
    late = figures["delayed"]
    print(f"at the parallel LM's delays: mean over pairs {late['mean_mi']:.3f} bits (floor {late['mean_floor']:.3f})")
    print("perplexity per codebook: " + ", ".join(f"{p:.1f}" for p in figures["perplexity"]))
    if args.json:
        write_json(args.json, figures)
    return 0


def run_tokens(args: argparse.Namespace) -> int:
    from umt.commands.lm import tokenizing
    from umt.data.manifest import Manifest
    from umt.tokens import Tokens

    if args.out.exists() and not args.overwrite:
        print(f"{args.out} exists: kept (pass --overwrite to replace it)")
        return 0
    manifest = Manifest.read(args.data)
    tokens = Tokens.of(tokenizing(args.model, flags.device(args.device)), manifest, args.model)
    tokens.save(args.out)
    counts = ", ".join(f"{name} {sum(len(c) for c in files)}" for name, files in tokens.splits.items())
    print(f"{args.out}: frames of {tokens.codebooks} codebooks of {tokens.codebook_size}: {counts}")
    return 0

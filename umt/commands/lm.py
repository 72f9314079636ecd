"""`umt lm train`: the token language model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from umt.commands import flags
from umt.errors import UserError

if TYPE_CHECKING:
    import torch

    from umt.translator import Translator


def add(commands) -> None:
    from umt.lm import MODES, LMConfig
    from umt.tokens import LM_RUN

    p = commands.add_parser("lm", help="the token language model")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser(
        "train",
        help="train a token LM on a model's tokens of a prepared dataset",
        description="Tokenizes the train and val splits (every domain) of PREP with MODEL's tokenizer, or reads "
        "them from --tokens, and trains a small causal transformer on windows of --context frames; writes "
        "OUT/last.pt and OUT/best.pt (lowest val NLL), and scores best.pt on the test split at the end.",
    )
    t.add_argument("prep", type=Path, metavar="PREP", nargs="?", help="a prepared dataset (with --model)")
    t.add_argument("--model", type=Path, help="a model with a tokenizer")
    t.add_argument(
        "--tokens", type=Path, metavar="FILE",
        help="train on the tokens `umt tokenizer tokens` wrote instead of PREP and --model (tokenized once: no "
        "audio, model or tokenizing at each run or resume)",
    )  # fmt: skip
    t.add_argument("--out", type=Path, required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument(
        "--from", dest="base", type=Path, metavar="MODEL",
        help="start from the token LM of --mode that MODEL carries (`umt export --lm`), or from an LM run: "
        "its weights and sizes, with a fresh optimiser (e.g. to go on from the shipped LM, or to fit it to your tokens)",
    )  # fmt: skip
    t.add_argument("--mode", choices=MODES, default="parallel", help="parallel (one step a frame, K heads, delays) or joint "
                   "(one step a token) (default: %(default)s)")  # fmt: skip
    for name in ("layers", "heads", "dim", "context"):
        t.add_argument(f"--{name}", type=int, help=f"(default: {getattr(LMConfig, name)}; with --from, its LM's)")
    t.add_argument("--dropout", type=flags.finite, help=f"(default: {LMConfig.dropout}; with --from, its LM's)")
    t.add_argument("--steps", type=int, default=3000, help="(default: %(default)s)")
    t.add_argument("--batch-size", type=int, help=f"windows a step (default: {LM_RUN['batch']}; resumed: the run's)")
    t.add_argument(
        "--lr", type=flags.finite, default=1e-3, help="a new run's (default: %(default)s; resumed: the run's)"
    )
    t.add_argument("--val-every", type=int, help=f"(default: {LM_RUN['val_every']}; resumed: the run's)")
    t.add_argument(
        "--patience", type=int, default=0,
        help="end the run once this many validations in a row found no lower val NLL, before --steps if so "
        "(default: 0, run every step)",
    )  # fmt: skip
    t.add_argument("--seed", type=int, default=0)
    flags.device_flag(t)
    t.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from umt.checkpoint import load_lm_state
    from umt.data.manifest import Manifest
    from umt.tokens import Tokens, starting_lm, train_lm
    from umt.training.solver import run_state

    if (args.tokens is None) == (args.prep is None and args.model is None):
        raise UserError("give PREP and --model (tokenized now), or --tokens FILE (tokenized before): one of them")
    if args.tokens is None and (args.prep is None or args.model is None):
        raise UserError("PREP and --model go together: the dataset and the model whose tokenizer reads it")
    given = [args.steps, args.batch_size, args.val_every]
    if min(v for v in given if v is not None) < 1 or args.lr <= 0 or args.patience < 0:
        raise UserError("--steps, --batch-size, --val-every and --lr must be positive, --patience not negative")
    if args.resume and args.base:
        raise UserError("--from starts a new run from an LM; --resume continues the run in --out: choose one")
    device = flags.device(args.device)
    # every mistake is found before the minutes of tokenizing: the run folder, the data, the LM to start from
    state = run_state(args.out, args.resume, load_lm_state)
    if args.tokens:
        tokens = Tokens.load(args.tokens)
        codebooks, codebook_size = tokens.codebooks, tokens.codebook_size
    else:
        manifest = Manifest.read(args.prep)
        translator = tokenizing(args.model, device)
        codebooks, codebook_size = (
            translator.model.cfg.tokenizer.codebooks,
            translator.model.cfg.tokenizer.codebook_size,
        )
    cfg, start = None, None
    if state is None:
        sizes = {name: getattr(args, name) for name in ("layers", "heads", "dim", "context", "dropout")}
        cfg, start = starting_lm(codebooks, codebook_size, args.mode, sizes, args.base)
    if not args.tokens:
        tokens = Tokens.of(translator, manifest, args.model)
    scores = train_lm(tokens, args.out, cfg, args.steps, args.batch_size, args.lr, args.seed, args.val_every,
                      state, args.patience, start, device)  # fmt: skip
    test = f", test {scores['test_bits']:.3f}" if "test_bits" in scores else ""
    print(f"NLL per frame: val {scores['val_bits']:.3f} bits{test}; {args.out / 'best.pt'}")
    return 0


def tokenizing(model: Path, device: torch.device) -> Translator:
    """A translator that tokenizes with `model`'s tokenizer (a model without one is refused)."""
    from umt.checkpoint import load_model
    from umt.translator import Translator

    return Translator(load_model(model, device), device, tokens=True)

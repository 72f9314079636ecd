"""`umt probe train`: SMITIN probes, where a model's activations carry a musical trait."""

from __future__ import annotations

import argparse
from pathlib import Path

from umt.commands import flags
from umt.errors import UserError


def add(commands) -> None:
    from umt.lm import MODES

    p = commands.add_parser("probe", help="SMITIN probes: where a model's activations carry a musical trait")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser(
        "train",
        help="train one logistic-regression probe per site on audio with and without a trait",
        description="Cuts the audio files of --with and --without into clips (one example each), reads the "
        "activations of every site (the latent, each layer of each domain's frame network, and each head of the "
        "token LM the model carries), fits one logistic regression per site and scores it on held-out clips. Writes "
        "PROBE (for --steer), PROBE's name with .md (the accuracy of every site) and .png (heatmaps of the LM's heads "
        "and of the frame networks' layers).",
    )
    t.add_argument("--with", dest="with_trait", type=Path, required=True, help="a folder of audio with the trait")
    t.add_argument("--without", type=Path, required=True, help="a folder of audio without it")
    t.add_argument("--trait", required=True, help="the trait's name, e.g. staccato")
    t.add_argument("-o", "--out", type=Path, required=True, help="the probe file to write (.pt)")
    t.add_argument("--model", type=Path, help="the model (default: the shipped one)")
    t.add_argument(
        "--mode", choices=MODES, default="parallel", help="which token LM of the model (default: %(default)s)"
    )
    t.add_argument("--clip-seconds", type=float, default=2.0, help="length of one example (default: %(default)s)")
    t.add_argument(
        "--held-out", type=float, default=0.3, help="share of the clips that score the probes (default: %(default)s)"
    )
    flags.device_flag(t)
    t.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from umt.audio import audio_files
    from umt.checkpoint import DEFAULT_MODEL, load_model
    from umt.steering import example_activations, fit_probes, save_probes, write_probe_report
    from umt.tokens import carried_lm
    from umt.translator import Translator

    if args.clip_seconds <= 0 or not 0 < args.held_out < 1:
        raise UserError("--clip-seconds must be positive and --held-out between 0 and 1")
    if args.out.suffix != ".pt":
        raise UserError(f"-o {args.out}: name a .pt file")
    device = flags.device(args.device)
    model_path = args.model or DEFAULT_MODEL
    model = load_model(model_path, device)
    lm = carried_lm(model_path, args.mode) if model.tokenizer is not None else None
    if lm is not None:
        lm = lm.to(device)
    translator = Translator(model, device)
    files = {}
    for name, folder in (("--with", args.with_trait), ("--without", args.without)):
        if not folder.is_dir():
            raise UserError(f"{name} {folder}: not a folder")
        files[name] = audio_files(folder)
        if not files[name]:
            raise UserError(f"{name} {folder}: no audio files")
    steps: dict[str, int] = {}
    with_trait = example_activations(translator, lm, files["--with"], args.clip_seconds, steps)
    without = example_activations(translator, lm, files["--without"], args.clip_seconds, steps)
    probes = fit_probes(with_trait, without, args.held_out, windows=steps)
    save_probes(args.out, args.trait, probes, str(model_path))
    report = write_probe_report(args.out, args.trait, probes)
    clips = len(next(iter(with_trait.values()))), len(next(iter(without.values())))
    print(f"{clips[0]} clips with {args.trait!r}, {clips[1]} without; {len(probes)} sites; best: "
          + ", ".join(f"{p.site} {p.accuracy:.2f}" for p in probes[:4]))  # fmt: skip
    print(f"wrote {args.out}, {', '.join(str(r) for r in report)}")
    return 0

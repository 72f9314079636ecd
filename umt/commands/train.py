"""`umt train`: train the encoder, one decoder per domain and the domain classifier."""

from __future__ import annotations

import argparse
from pathlib import Path

from umt.commands import flags

# shorthands for the loss weights users set most: (kind, flag, help)
WEIGHT_FLAGS = (
    ("confusion", "--confusion-weight", "lambda: weight of the domain-confusion term"),
    ("translation_chroma", "--chroma-weight", "spectral presets: weight of the translation-chroma term (each "
     + "crop translated into another domain must keep its pitch classes)"),
    ("mmd", "--mmd-weight", "a model with a tokenizer: weight of the independence loss between its codebooks"),
    ("realism", "--realism-weight", "spectral presets: weight of the realism term (a critic per domain scores "
     + "translated spectra against real ones)"),
)  # fmt: skip


def add(commands) -> None:
    from umt.losses import CONFUSIONS, WEIGHTS
    from umt.modules.critic import FEATURES
    from umt.presets import PRESETS
    from umt.training.config import TrainConfig

    defaults = TrainConfig()
    p = commands.add_parser(
        "train",
        help="train the encoder, one decoder per domain and the domain classifier",
        description="Trains on a prepared dataset (umt prepare). All domains train together in one process; "
        "under torchrun each process takes a slice of every batch (DDP). With --resume, flags you give "
        "override the stored ones (e.g. a larger --steps).",
    )
    p.add_argument("prep", type=Path, metavar="PREP", help="a folder written by `umt prepare`")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoints and TensorBoard logs")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument(
        "--from",
        dest="base",
        type=Path,
        help="start from this checkpoint: alone, fine-tune all its decoders on its frozen encoder; "
        "with --add-domain, the model to extend",
    )
    p.add_argument("--add-domain", help="train only a new decoder for this domain of PREP; all else frozen")
    flags.device_flag(p)
    training_flags = {
        "preset": dict(choices=list(PRESETS)),
        "steps": dict(type=int),
        "batch_size": dict(type=int, help="crops per domain per process"),
        "crop": dict(type=int, help="crop length in samples, a multiple of the latent frame"),
        "render_batch_size": dict(
            type=int, help="spectral presets: renderer crops per domain per process; 0 = frames only"
        ),
        "render_crop": dict(type=int, help="spectral presets: renderer crop length in samples"),
        "lr": dict(type=float),
        "lr_decay": dict(type=float, help="learning-rate factor per 1000 steps"),
        "clip": dict(type=float, help="gradient-norm clipping"),
        "confusion": dict(
            choices=list(CONFUSIONS),
            help="maximize the classifier's CE (the paper; unbounded) or push its belief to uniform (bounded; spectral presets)",
        ),
        "timbre_augment": dict(
            type=float,
            metavar="DB",
            help="spectral presets: random spectral envelope of up to DB dB on the encoder's input; 0 = off",
        ),
        "mmd_delayed": dict(
            action=argparse.BooleanOptionalAction,
            help="compare codebooks at the parallel token LM's delays (k frames apart)",
        ),
        "frames_only": dict(
            action=argparse.BooleanOptionalAction,
            help="with --from, a spectral model: only the frame networks train (encoder, tokenizer, renderers kept)",
        ),
        "critic": dict(
            choices=list(FEATURES),
            help="what the realism critics read: the smoothed spectrum, or only its dynamics (loudness, rises, falls)",
        ),
        "critic_domains": dict(
            type=lambda text: [d for d in text.split(",") if d],
            metavar="D1,D2",
            help="the domains that get a realism critic; translations into the others get no realism term (default: all)",
        ),
        "seed": dict(type=int),
        "workers": dict(type=int, help="DataLoader worker processes"),
        "precision": dict(choices=["auto", "fp32", "bf16", "fp16"]),
        "activation_checkpointing": dict(
            action=argparse.BooleanOptionalAction, help="recompute decoder layers in backward to save memory"
        ),
        "val_every": dict(type=int),
        "val_items": dict(type=int, help="validation crops per domain"),
        "checkpoint_every": dict(
            type=int,
            help="steps between saves of RUN/last.pt (Ctrl-C or SIGTERM also saves it; a kill -9 loses at most this many steps)",
        ),
        "keep_every": dict(
            type=int, help="steps between snapshots kept as RUN/step<N>.pt, for curves over training time; 0 = none"
        ),
        "audio_every": dict(type=int, help="steps between TensorBoard audio clips"),
        "log_every": dict(type=int, help="steps between log lines when not on a terminal"),
    }
    p.add_argument(
        "--model-set", action="append", metavar="NAME=VALUE", dest="model_overrides",
        help="a model setting over the preset's for a new run, e.g. --model-set latent_channels=16 (repeatable; "
        "the names: umt/config.py, e.g. encoder.channels, wavenet.output, frames.flutter)",
    )  # fmt: skip
    p.add_argument(
        "--loss-weight", action="append", metavar="KIND=W", dest="loss_weights",
        help="the weight of a kind of loss term (repeatable; the kinds and their defaults: "
        + ", ".join(f"{k} {w:g}" for k, w in WEIGHTS.items()) + "; umt.losses says what each is)",
    )  # fmt: skip
    for kind, flag, text in WEIGHT_FLAGS:
        p.add_argument(flag, type=float, dest=kind, metavar="W", help=f"{text} (= --loss-weight {kind}=W)")
    for name, kwargs in training_flags.items():
        default = getattr(defaults, name)
        if any(name in row.training for row in PRESETS.values()):  # set per preset
            default = ", ".join(f"{p} {row.training[name]}" for p, row in PRESETS.items() if name in row.training)
        kwargs["help"] = f"{kwargs.get('help', '')} (default: {default})".strip()
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, **kwargs)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from umt.config import parse_settings
    from umt.losses import parse_weights
    from umt.training.config import TrainConfig
    from umt.training.loop import train

    options = {k: getattr(args, k) for k in TrainConfig.field_names() if getattr(args, k, None) is not None}
    weights = parse_weights(args.loss_weights or [])
    weights.update({kind: getattr(args, kind) for kind, _, _ in WEIGHT_FLAGS if getattr(args, kind) is not None})
    if weights:
        options["loss_weights"] = weights
    if args.model_overrides:
        options["model_overrides"] = parse_settings(args.model_overrides)
    train(args.prep, args.out, options, args.device, args.resume, args.base, args.add_domain)
    return 0

"""The `umt` command line: one subcommand per job, each a thin layer over the library."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from umt import DEFAULT_SAMPLE_RATE
from umt.errors import UserError


def run(argv: list[str] | None = None) -> None:
    """The program's entry point (the `umt` command, python -m umt, train.py, translate.py)."""
    status = main(argv)
    if status == INTERRUPTED:
        # Leave at once: outputs are already cleaned up (atomic writes), and on the way out of
        # an interpreter that ran generation threads, native thread pools can abort (SIGABRT).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    raise SystemExit(status)


INTERRUPTED = 130  # the exit status of a program ended by Ctrl-C


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports torch (the presets): Ctrl-C can land here
    except KeyboardInterrupt:
        print("umt: interrupted", file=sys.stderr)
        return INTERRUPTED
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UserError as exc:
        print(f"umt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"umt {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="umt", description="Universal music translation: data, training, translation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_prepare(commands)
    _add_make_bench(commands)
    _add_train(commands)
    _add_translate(commands)
    _add_judge(commands)
    _add_evaluate(commands)
    _add_export(commands)
    _add_tokenizer(commands)
    _add_lm(commands)
    _add_generate(commands)
    _add_probe(commands)
    return parser


def _device(name: str):
    from umt.runtime import resolve_device

    return resolve_device(name)


def _device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N (default: %(default)s)"
    )


def _sampling_flags(parser: argparse.ArgumentParser) -> None:
    """--temperature and --flutter: each overrides, for every domain, the model's own choice (umt.translator.Sampling)."""
    parser.add_argument(
        "--temperature", type=float,
        help="the WaveNets' sampling temperature, every domain; 0 = the likeliest value (default: the model's own choice "
        "per domain, else 1)",
    )  # fmt: skip
    parser.add_argument(
        "--flutter", type=float,
        help="spectral models with flutter heads: how much of the frame-to-frame flutter they predict is drawn onto "
        "the spectrum, every domain; 0 = the median spectrum, smooth (default: the model's own choice per domain, else 1)",
    )  # fmt: skip


def _renderer_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--renderer", choices=["wavenet", "sines"], default="wavenet",
        help="wavenet: each domain's autoregressive WaveNet; sines (spectral models): the predicted spectrum played "
        "by a bank of sinusoids, a quick preview without the WaveNet (default: %(default)s)",
    )  # fmt: skip


def _tokens_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokens", action="store_true",
        help="go through the model's tokens: the latent its tokenizer quantises (umt tokenizer train)",
    )  # fmt: skip


def _steer_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--steer", action="append", default=[], metavar="PROBE[:ALPHA]",
        help="nudge the model towards a probe's trait (umt probe train), ALPHA standard deviations along its "
        "direction (default 2; negative: away from it); repeatable",
    )  # fmt: skip
    parser.add_argument("--steer-sites", type=int, default=4, help="the probe's best sites that are nudged, per target domain (default: %(default)s)")
    parser.add_argument(
        "--steer-threshold", type=float, default=0.9,
        help="self-monitoring: the nudge pauses while the probes have read the trait with at least this probability "
        "for a quarter second running; 1 = never pause (default: %(default)s)",
    )  # fmt: skip


def _steering(args: argparse.Namespace, groups: list[list]):
    """The Steering of every --steer PROBE[:ALPHA], or None: in each group of sites (the sites
    one output runs through: one target domain's frame network, or the LM's heads), the
    probe's --steer-sites best, monitored at --steer-threshold."""
    from umt.steering import Steering, load_probes, parse_steer

    if not args.steer:
        return None
    if args.steer_sites < 1:
        raise UserError("--steer-sites must be positive")
    if not 0 < args.steer_threshold <= 1:
        raise UserError(f"--steer-threshold {args.steer_threshold:g}: choose a probability in (0, 1]")
    sites = list({site.name: site for group in groups for site in group}.values())
    chosen, alphas = [], []
    for text in args.steer:
        path, alpha = parse_steer(text)
        trait, probes = load_probes(Path(path))
        best = [[p for p in probes if p.site in {site.name for site in group}][: args.steer_sites] for group in groups]
        usable = list({p.site: p for group in best for p in group}.values())
        if not usable:
            raise UserError(f"--steer {text}: none of its probes' sites is in this model")
        chosen += usable
        alphas += [alpha] * len(usable)
        print(f"steering towards {trait!r} at alpha {alpha:g}: {', '.join(f'{p.site} ({p.accuracy:.2f})' for p in usable)}")
    return Steering(sites, chosen, alphas, args.steer_threshold if args.steer_threshold < 1 else None)


def _jobs_flag(parser: argparse.ArgumentParser) -> None:
    from umt.data.prepare import default_jobs

    parser.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: %(default)s)")


# ---------------------------------------------------------------- prepare


def _add_prepare(commands) -> None:
    p = commands.add_parser(
        "prepare",
        help="decode a folder of domains into a training-ready dataset",
        description="SRC holds one subfolder per domain with audio files at any depth. Each file is decoded, "
        "resampled and stored as int16 under OUT, with a manifest and a deterministic train/val/test split.",
    )
    p.add_argument("source", type=Path, metavar="SRC")
    p.add_argument("out", type=Path, metavar="OUT")
    p.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, help="model rate in Hz (default: %(default)s)")
    p.add_argument("--split", default="80/10/10", help="train/val/test percentages (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default: %(default)s)")
    p.add_argument("--min-seconds", type=float, default=1.0, help="skip shorter files (default: %(default)s)")
    _jobs_flag(p)
    p.set_defaults(run=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from umt.data.manifest import parse_split
    from umt.data.prepare import format_table, prepare

    manifest = prepare(
        args.source, args.out, args.sample_rate, parse_split(args.split), args.seed, args.min_seconds, args.jobs
    )
    for skipped in manifest.skipped:
        print(f"skipped {skipped['source']}: {skipped['reason']}")
    print(format_table(manifest))
    empty = [d for d in manifest.domains if not manifest.entries(d)]
    if empty:
        print(f"umt prepare: error: no usable audio in domain(s) {', '.join(empty)}", file=sys.stderr)
        return 1
    print(f"prepared {len(manifest.files)} files into {args.out}")
    return 0


# ---------------------------------------------------------------- make-bench


def _add_make_bench(commands) -> None:
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
    p.add_argument("--corpus", default=DEFAULT_CORPUS, help="music21 corpus collection or composer (default: %(default)s)")
    p.add_argument("--clip-seconds", type=float, default=20.0, help="longest excerpt per piece (default: %(default)s)")
    p.add_argument("--with-drums", action="store_true", help="add a General-MIDI drum part to every piece")
    p.add_argument("--soundfont", type=Path, help="a General-MIDI .sf2 to render with (default: TimGM6mb.sf2 from pretty_midi)")
    p.add_argument(
        "--trait", choices=list(TRAITS),
        help="render trait pairs for `umt probe train` instead: every piece with the trait into OUT/with/<domain>/ and "
        "without it into OUT/without/<domain>/ (" + "; ".join(f"{k}: {v}" for k, v in TRAITS.items()) + ")",
    )  # fmt: skip
    _jobs_flag(p)
    p.set_defaults(run=_run_make_bench)


def _run_make_bench(args: argparse.Namespace) -> int:
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
    print(f"rendered {len(pairing['pieces'])} pieces ({minutes:.2f} min) x {len(domains)} domains{pairs} into {args.out}")
    return 0


# ---------------------------------------------------------------- train


def _add_train(commands) -> None:
    from umt.presets import PRESETS
    from umt.train import TrainConfig

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
    p.add_argument("--from", dest="base", type=Path, help="start from this checkpoint: alone, fine-tune all its decoders on its frozen encoder; "
                   "with --add-domain, the model to extend")
    p.add_argument("--add-domain", help="train only a new decoder for this domain of PREP; all else frozen")
    _device_flag(p)
    flags = {
        "preset": dict(choices=list(PRESETS)),
        "steps": dict(type=int),
        "batch_size": dict(type=int, help="crops per domain per process"),
        "crop": dict(type=int, help="crop length in samples, a multiple of the latent frame"),
        "render_batch_size": dict(type=int, help="spectral presets: renderer crops per domain per process; 0 = frames only"),
        "render_crop": dict(type=int, help="spectral presets: renderer crop length in samples"),
        "lr": dict(type=float),
        "lr_decay": dict(type=float, help="learning-rate factor per 1000 steps"),
        "clip": dict(type=float, help="gradient-norm clipping"),
        "confusion_weight": dict(type=float, help="lambda: weight of the domain-confusion term"),
        "confusion": dict(
            choices=["maximize", "uniform"],
            help="maximize the classifier's CE (the paper; unbounded) or push its belief to uniform (bounded; spectral presets)",
        ),
        "timbre_augment": dict(
            type=float, metavar="DB", help="spectral presets: random spectral envelope of up to DB dB on the encoder's input; 0 = off"
        ),
        "chroma_weight": dict(
            type=float, help="spectral presets: weight of the translation-chroma term (each crop translated into another "
            "domain must keep its pitch classes); 0 = off",
        ),
        "mmd_weight": dict(type=float, help="a model with a tokenizer: weight of the independence loss between its codebooks"),
        "mmd_delayed": dict(
            action=argparse.BooleanOptionalAction, help="compare codebooks at the parallel token LM's delays (k frames apart)"
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
            type=int, help="steps between saves of RUN/last.pt (Ctrl-C or SIGTERM also saves it; a kill -9 loses at most this many steps)"
        ),
        "keep_every": dict(type=int, help="steps between snapshots kept as RUN/step<N>.pt, for curves over training time; 0 = none"),
        "audio_every": dict(type=int, help="steps between TensorBoard audio clips"),
        "log_every": dict(type=int, help="steps between log lines when not on a terminal"),
    }
    p.add_argument(
        "--model-set", action="append", metavar="NAME=VALUE", dest="model_overrides",
        help="a model setting over the preset's for a new run, e.g. --model-set latent_channels=16 (repeatable; "
        "the names are umt.model.ModelConfig's fields)",
    )  # fmt: skip
    for name, kwargs in flags.items():
        default = getattr(defaults, name)
        if any(name in row.training for row in PRESETS.values()):  # set per preset
            default = ", ".join(f"{p} {row.training[name]}" for p, row in PRESETS.items() if name in row.training)
        kwargs["help"] = f"{kwargs.get('help', '')} (default: {default})".strip()
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, **kwargs)
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from umt.train import TrainConfig, train

    options = {k: getattr(args, k) for k in TrainConfig.field_names() if getattr(args, k, None) is not None}
    if args.model_overrides:
        options["model_overrides"] = _model_settings(args.model_overrides)
    train(args.prep, args.out, options, args.device, args.resume, args.base, args.add_domain)
    return 0


def _model_settings(items: list[str]) -> dict:
    """['latent_channels=16', 'render_residual=false'] -> {'latent_channels': 16, 'render_residual': False},
    each value read as the type of that ModelConfig field."""
    from umt.model import ModelConfig

    defaults = ModelConfig()
    settings = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not hasattr(defaults, name) or name == "domains":
            raise UserError(f"--model-set {item}: expected NAME=VALUE with NAME a model setting (see umt.model.ModelConfig)")
        kind = type(getattr(defaults, name))
        try:
            value = {"true": True, "false": False}[text.lower()] if kind is bool else kind(text)
        except (KeyError, ValueError):
            raise UserError(f"--model-set {item}: {text!r} is not a {kind.__name__}") from None
        settings[name] = value
    return settings


# ---------------------------------------------------------------- translate


def _add_translate(commands) -> None:
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
    _sampling_flags(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default: %(default)s)")
    _renderer_flag(p)
    _tokens_flag(p)
    _steer_flags(p)
    p.add_argument("--format", choices=["wav", "flac"], default="wav", help="output format (default: %(default)s)")
    p.add_argument("--zero-nonfinite", action="store_true",
                   help="set NaN and infinite input samples to 0 (and report them) instead of refusing the file")  # fmt: skip
    p.add_argument("--sample-rate", type=int, help="resample the outputs to this rate (soxr; default: the model's)")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--shard", default="0/1", help="I/N: translate only shard I (from 0) of N (default: %(default)s)")
    _device_flag(p)
    p.add_argument(
        "--precision", choices=["fp32", "bf16"], default="fp32",
        help="arithmetic of generation (default: %(default)s; bf16 was 3-4x slower on the CPUs measured, see the README's Generation speed)",
    )  # fmt: skip
    p.set_defaults(run=_run_translate)


def _run_translate(args: argparse.Namespace) -> int:
    import torch

    from umt.checkpoint import DEFAULT_MODEL, load_model
    from umt.steering import frame_sites
    from umt.translate import check_output_folder, convert, find_jobs, parse_shard, shard, summary
    from umt.translator import Translator

    device = _device(args.device)
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
    steering = _steering(args, [frame_sites(model, d) for d in targets] if args.steer else [])  # flags checked before OUT is made
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
        print(f"steering: the nudge applied at {steering.nudged_share():.0%} of the frames (the rest paused by self-monitoring)")
    print(summary(report))
    return 1 if report.failed else 0


# ---------------------------------------------------------------- the judge and evaluate


def _add_judge(commands) -> None:
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
    t.add_argument("--out", type=Path, required=True, help="folder for judge.pt")
    t.add_argument("--steps", type=int, default=600, help="(default: %(default)s)")
    t.add_argument("--batch-size", type=int, default=8, help="crops per domain per step (default: %(default)s)")
    t.add_argument("--test-clips", type=int, default=64, help="test crops per domain (default: %(default)s)")
    t.add_argument("--crop-seconds", type=float, default=2.0, help="length of a training crop (default: %(default)s)")
    t.add_argument("--tilt-db", type=float, default=0.0,
                   help="random spectral tilt of up to this many dB on training crops (default: %(default)s)")  # fmt: skip
    t.add_argument("--seed", type=int, default=0)
    _device_flag(t)
    t.set_defaults(run=_run_judge_train)


def _run_judge_train(args: argparse.Namespace) -> int:
    from umt.judge import train_judge

    if args.steps < 1 or args.batch_size < 1 or args.test_clips < 1 or args.crop_seconds <= 0:
        raise UserError("--steps, --batch-size, --test-clips and --crop-seconds must be positive")
    if args.tilt_db < 0:
        raise UserError(f"--tilt-db {args.tilt_db:g}: must not be negative")
    scores = train_judge(
        args.prep, args.out, steps=args.steps, batch_per_domain=args.batch_size, seed=args.seed, device=_device(args.device),
        test_clips=args.test_clips, crop_seconds=args.crop_seconds, holdout=args.holdout, tilt_db=args.tilt_db,
    )  # fmt: skip
    for kind, corpora in (("test", scores["corpora"]), ("held-out", scores["holdout"])):
        for root, s in corpora.items():
            per_domain = ", ".join(f"{d} {v:.3f}" for d, v in s["per_domain_accuracy"].items())
            print(f"judge accuracy on {kind} {root}: {s['test_accuracy']:.3f} ({per_domain})")
    print(f"judge test accuracy {scores['test_accuracy']:.3f}; saved {args.out / 'judge.pt'}")
    return 0


def _add_evaluate(commands) -> None:
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
    p.add_argument("--figures", type=int, default=1, help="spectrogram examples per source domain (default: %(default)s)")
    _sampling_flags(p)
    p.add_argument("--batch-size", type=int, help="clips decoded at once (default: as many as fit in memory)")
    _renderer_flag(p)
    _tokens_flag(p)
    _device_flag(p)
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from umt.checkpoint import find_checkpoint, load_model
    from umt.data.manifest import Manifest
    from umt.evaluate import evaluate, off_diagonal_means
    from umt.judge import TRUSTED_JUDGE, load_judge
    from umt.translator import Translator

    if args.clips < 1 or args.seconds <= 0 or (args.batch_size is not None and args.batch_size < 1):
        raise UserError("--clips, --seconds and --batch-size must be positive")
    if args.figures < 0:
        raise UserError("--figures must not be negative")
    device = _device(args.device)
    judge = judge_accuracy = None
    if args.judge is not None:
        path = find_checkpoint(args.judge)
        judge, state = load_judge(path, device)
        judge_accuracy = state["test_accuracy"]
        print(f"judge: {path}, test accuracy on real audio {judge_accuracy:.3f}")
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


def _add_export(commands) -> None:
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
        "--lm", type=Path, action="append", default=[], metavar="LM",
        help="carry this token LM (an `umt lm train` run or its best.pt, or every LM a model carries) in the model, "
        "for `umt generate` (repeatable: one per mode)",
    )  # fmt: skip
    p.add_argument(
        "--sampling", type=Path, metavar="JSON",
        help='how translation renders each domain by default: {"DOMAIN": {"temperature": T, "flutter": F}, ...} '
        "(experiments/sound/sampling.sh chooses them on the val split); the flags of translate and evaluate override it",
    )  # fmt: skip
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from umt.checkpoint import export_model

    sampling = None
    if args.sampling is not None:
        try:
            sampling = json.loads(args.sampling.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"--sampling {args.sampling}: cannot read it as JSON ({exc})") from None
    out, state = export_model(args.checkpoint, args.out, args.renderers_from, args.lm, sampling)
    renderers = f", renderers from {args.renderers_from} (step {state['renderers_from']['step']})" if args.renderers_from else ""
    lms = f", token LM {', '.join(state['lm'])}" if state.get("lm") else ""
    print(f"wrote {out}: domains {', '.join(state['config']['domains'])}, step {state['step']}{renderers}{lms}")
    return 0


# ---------------------------------------------------------------- tokens: tokenizer, LM, generate


TOKENIZER_RUN = {"steps": 1500, "lr": 5e-4, "mmd_weight": 0.0}  # what `umt tokenizer train` changes of the base's training


def _add_tokenizer(commands) -> None:
    p = commands.add_parser("tokenizer", help="a residual-VQ tokenizer of the latent, and how independent its codebooks are")
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
    t.add_argument("--mmd-weight", type=float, help=f"weight of the independence loss (default: {TOKENIZER_RUN['mmd_weight']})")
    t.add_argument("--no-mmd-delays", action="store_true", help="compare codebooks within a frame, not at the parallel LM's delays")
    t.add_argument(
        "--tune-decoders", action="store_true",
        help="fine-tune the frame networks to the quantised latent too (by default they stay as they are, so the "
        "model's continuous translations do not change)",
    )  # fmt: skip
    t.add_argument("--steps", type=int, help=f"(default: {TOKENIZER_RUN['steps']})")
    t.add_argument("--lr", type=float, help=f"(default: {TOKENIZER_RUN['lr']})")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], help="(default: the base model's run's)")
    _device_flag(t)
    t.set_defaults(run=_run_tokenizer_train)
    m = actions.add_parser(
        "measure",
        help="mutual information between codebooks and their perplexity, on a split's tokens",
        description="Tokenizes every file of a split and prints the mutual information (bits; Miller-Madow "
        "corrected) between every pair of codebooks, its floor (one stream permuted), and each codebook's perplexity.",
    )
    m.add_argument("--model", type=Path, required=True)
    m.add_argument("--data", type=Path, required=True, help="a prepared dataset")
    m.add_argument("--split", default="test", choices=["train", "val", "test"], help="(default: %(default)s)")
    m.add_argument("--json", type=Path, help="also write the figures here")
    _device_flag(m)
    m.set_defaults(run=_run_tokenizer_measure)


def _run_tokenizer_train(args: argparse.Namespace) -> int:
    from umt.train import train

    if args.codebooks < 1 or args.codebook_size < 2 or (args.mmd_weight or 0) < 0:
        raise UserError("--codebooks must be positive, --codebook-size at least 2, --mmd-weight not negative")
    given = {k: getattr(args, k) for k in ("steps", "lr", "mmd_weight", "precision") if getattr(args, k) is not None}
    if args.no_mmd_delays:
        given["mmd_delayed"] = False
    options = given
    if not args.resume:
        if args.base is None:
            raise UserError("--from MODEL: name the trained model to fit a tokenizer onto (or --resume a run)")
        model = {"codebooks": args.codebooks, "codebook_size": args.codebook_size}
        options = {**TOKENIZER_RUN, "render_batch_size": 0, "model_overrides": model, "freeze_decoders": not args.tune_decoders, **given}
    train(args.prep, args.out, options, args.device, args.resume, None if args.resume else args.base)
    return 0


def _run_tokenizer_measure(args: argparse.Namespace) -> int:
    from umt.checkpoint import load_model
    from umt.data.manifest import Manifest
    from umt.fileio import write_json
    from umt.tokens import measure
    from umt.translator import Translator

    device = _device(args.device)
    figures = measure(Translator(load_model(args.model, device), device, tokens=True), Manifest.read(args.data), args.split)
    k = len(figures["perplexity"])
    print(f"{figures['frames']} frames of the {args.split} split; mutual information between codebooks (bits), floor in brackets:")
    for i in range(k):
        print("  " + "  ".join("   -   " if i == j else f"{figures['mi'][i][j]:.3f} ({figures['floor'][i][j]:.3f})" for j in range(k)))
    print(f"mean over pairs {figures['mean_mi']:.3f} bits (floor {figures['mean_floor']:.3f})")
    print("perplexity per codebook: " + ", ".join(f"{p:.1f}" for p in figures["perplexity"]))
    if args.json:
        write_json(args.json, figures)
    return 0


def _add_lm(commands) -> None:
    from umt.lm import MODES, LMConfig

    p = commands.add_parser("lm", help="the token language model")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser(
        "train",
        help="train a token LM on a model's tokens of a prepared dataset",
        description="Tokenizes the train and val splits (every domain) with MODEL's tokenizer and trains a small "
        "causal transformer on windows of --context frames; writes OUT/last.pt and OUT/best.pt (lowest val NLL), "
        "and scores best.pt on the test split at the end.",
    )
    t.add_argument("prep", type=Path, metavar="PREP")
    t.add_argument("--model", type=Path, required=True, help="a model with a tokenizer")
    t.add_argument("--out", type=Path, required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--mode", choices=MODES, default="parallel", help="parallel (one step a frame, K heads, delays) or joint "
                   "(one step a token) (default: %(default)s)")  # fmt: skip
    for name in ("layers", "heads", "dim", "context"):
        t.add_argument(f"--{name}", type=int, default=getattr(LMConfig, name), help="(default: %(default)s)")
    t.add_argument("--steps", type=int, default=3000, help="(default: %(default)s)")
    t.add_argument("--batch-size", type=int, default=16, help="windows a step (default: %(default)s)")
    t.add_argument("--lr", type=float, default=1e-3, help="(default: %(default)s)")
    t.add_argument("--val-every", type=int, default=250, help="(default: %(default)s)")
    t.add_argument("--seed", type=int, default=0)
    _device_flag(t)
    t.set_defaults(run=_run_lm_train)


def _run_lm_train(args: argparse.Namespace) -> int:
    from umt.checkpoint import load_model
    from umt.data.manifest import Manifest
    from umt.lm import LMConfig
    from umt.tokens import train_lm
    from umt.translator import Translator

    if min(args.steps, args.batch_size, args.val_every) < 1 or args.lr <= 0:
        raise UserError("--steps, --batch-size, --val-every and --lr must be positive")
    device = _device(args.device)
    translator = Translator(load_model(args.model, device), device, tokens=True)  # refuses a model without a tokenizer
    model_cfg = translator.model.cfg
    cfg = LMConfig(model_cfg.codebooks, model_cfg.codebook_size, args.mode, args.layers, args.heads, args.dim, args.context)
    cfg.check()
    scores = train_lm(translator, Manifest.read(args.prep), args.out, cfg, args.steps, args.batch_size, args.lr,
                      args.seed, args.val_every, args.resume)  # fmt: skip
    test = f", test {scores['test_bits']:.3f}" if "test_bits" in scores else ""
    print(f"NLL per frame: val {scores['val_bits']:.3f} bits{test}; {args.out / 'best.pt'}")
    return 0


def _add_generate(commands) -> None:
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
    p.add_argument("--mode", choices=MODES, default="parallel", help="which LM the model carries to use (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0, help="the LM's sampling temperature; 0 = greedy (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    _steer_flags(p)
    _device_flag(p)
    p.set_defaults(run=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    from umt.audio import load_audio, write_audio
    from umt.checkpoint import DEFAULT_MODEL, load_lm_state, load_model
    from umt.steering import lm_sites
    from umt.tokens import carried_lm, continue_prompt, load_lm
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
    device = _device(args.device)
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
    if (lm.cfg.codebooks, lm.cfg.codebook_size) != (model.cfg.codebooks, model.cfg.codebook_size):
        raise UserError("the token LM was trained on another tokenizer than the model's")
    # Generation is steered where SMITIN steers it: the LM's attention heads, read at every step.
    steering = _steering(args, [lm_sites(lm)])
    with steering.applied() if steering else contextlib.nullcontext():
        audio, figures = continue_prompt(translator, lm, load_audio(args.prompt, model.cfg.sample_rate), args.seconds, args.to,
                                         args.temperature, args.seed)  # fmt: skip
    if steering:
        print(f"steering: the nudge applied at {steering.newest_nudged():.0%} of the steps (the rest paused by self-monitoring)")
    write_audio(args.out, audio, model.cfg.sample_rate)
    print(f"wrote {args.out}: {audio.size / model.cfg.sample_rate:.2f} s in {args.to}; the {lm.cfg.mode} LM made "
          f"{figures['frames']} frames at {figures['frames_per_second']:.0f} frames/s")  # fmt: skip
    return 0


# ---------------------------------------------------------------- steering probes


def _add_probe(commands) -> None:
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
    t.add_argument("--mode", choices=MODES, default="parallel", help="which token LM of the model (default: %(default)s)")
    t.add_argument("--clip-seconds", type=float, default=2.0, help="length of one example (default: %(default)s)")
    t.add_argument("--held-out", type=float, default=0.3, help="share of the clips that score the probes (default: %(default)s)")
    _device_flag(t)
    t.set_defaults(run=_run_probe_train)


def _run_probe_train(args: argparse.Namespace) -> int:
    from umt.audio import audio_files
    from umt.checkpoint import DEFAULT_MODEL, load_model
    from umt.steering import example_activations, fit_probes, save_probes, write_probe_report
    from umt.tokens import carried_lm
    from umt.translator import Translator

    if args.clip_seconds <= 0 or not 0 < args.held_out < 1:
        raise UserError("--clip-seconds must be positive and --held-out between 0 and 1")
    if args.out.suffix != ".pt":
        raise UserError(f"-o {args.out}: name a .pt file")
    device = _device(args.device)
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

"""The settings of a training run and how a run is planned: a new run, --resume, --from
(fine-tuning a trained model, or fitting a tokenizer onto it) and --add-domain; the live
state a checkpoint saves and restores."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from umt.checkpoint import load_checkpoint, load_model_state
from umt.config import ModelConfig, canonical, settings_of
from umt.data.manifest import Manifest
from umt.errors import UserError
from umt.losses import CONFUSIONS, WEIGHTS
from umt.model import UMT
from umt.modules.classifier import DomainClassifier
from umt.modules.critic import FEATURES, critics
from umt.presets import PRESETS, preset
from umt.recipes import Crops, recipe
from umt.training.solver import run_state


@dataclass
class TrainConfig:
    """Everything about a run except where it runs; stored in every checkpoint."""

    preset: str = "spectral"
    steps: int = 20000
    batch_size: int = 8  # crops per domain, per process (spectral: frame crops; 0 = frame networks do not train)
    crop: int = 8000  # samples; the paper uses 12000 (0.75 s at 16 kHz)
    render_batch_size: int = 8  # spectral: renderer crops per domain, per process (0 = renderers do not train)
    render_crop: int = 2400  # spectral: samples of a renderer crop
    lr: float = 1e-3
    lr_decay: float = 0.98  # factor per 1000 steps
    clip: float = 1.0  # gradient-norm clipping
    # how much each kind of loss term counts (umt.losses: WEIGHTS, the defaults, and what each
    # kind is); a run stores the whole map, and options change it kind by kind
    loss_weights: dict = field(default_factory=lambda: dict(WEIGHTS))
    # the confusion term: "maximize" the classifier's CE (the paper; unbounded), or push its
    # belief to "uniform" (bounded; umt.losses.confusion)
    confusion: str = "maximize"
    # spectral: peak dB of a random spectral envelope on the encoder's input (0 = off), so the
    # latent cannot carry the input's timbre (umt.data.augment)
    timbre_augment: float = 0.0
    # the encoder keeps its weights and only the decoders train (`umt train --from BASE` alone:
    # fine-tuning decoders to a finished latent); no domain-confusion classifier then
    freeze_encoder: bool = False
    # with freeze_encoder: the decoders keep their weights too, and only the tokenizer trains
    # (`umt tokenizer train` without --tune-decoders), so the model translates as before
    freeze_decoders: bool = False
    # only the frame networks' flutter heads train, all else keeps its weights (set by
    # `--from BASE --model-set frames.flutter=true` on a base without them: the model then
    # translates as before, plus flutter, and its tokenizer and token LMs stay valid)
    flutter_only: bool = False
    # with --from: only the frame networks train (levels and flutter heads), on the latent that
    # translation reads (unquantised); the encoder, tokenizer and renderers keep their weights,
    # so the tokenizer and token LMs stay valid (a realism term on the translation path, say)
    frames_only: bool = False
    # what the realism critics read (umt.modules.critic): the smoothed "spectrum", or only its "envelope"
    critic: str = "spectrum"
    # the domains that have a critic (empty: every domain); translations into the others get no realism term
    critic_domains: list = field(default_factory=list)
    # the independence loss between a tokenizer's codebooks (loss weight "mmd") compares them at
    # the parallel token LM's delays (codebook k, k frames earlier)
    mmd_delayed: bool = True
    # ... on a macro-batch: the tokenizer's inputs of this many training batches, kept, and every
    # that many steps the loss on up to mmd_positions of their positions (the source's 32 batches)
    mmd_macro_batches: int = 32
    mmd_positions: int = 4096
    # ModelConfig fields set over the preset's for a new run, e.g. {"latent_channels": 16}
    model_overrides: dict = field(default_factory=dict)
    seed: int = 0
    workers: int = 2  # DataLoader processes (pitch augmentation runs there)
    precision: str = "auto"  # auto (bf16 on CUDA where supported, else fp16; fp32 on CPU), fp32, bf16, fp16
    activation_checkpointing: bool = False  # recompute decoder layers in backward: less memory, ~1/3 more compute
    val_every: int = 500
    val_items: int = 32  # validation crops per domain
    checkpoint_every: int = 250
    keep_every: int = 0  # steps between snapshots kept as step<N>.pt (0 = none)
    audio_every: int = 2000
    log_every: int = 50

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def check(self, cfg: ModelConfig) -> None:
        """Refuse settings a run of model `cfg` cannot train with, naming the flag."""
        if self.critic not in FEATURES:
            raise UserError(f"--critic {self.critic}: choose {' or '.join(FEATURES)}")
        unknown = [d for d in self.critic_domains if d not in cfg.domains]
        if unknown:
            raise UserError(f"--critic-domains: no domain {', '.join(unknown)} (the model's: {', '.join(cfg.domains)})")
        if self.confusion not in CONFUSIONS:
            raise UserError(f"--confusion {self.confusion}: choose {' or '.join(CONFUSIONS)}")
        for kind, weight in self.loss_weights.items():
            if kind not in WEIGHTS:
                raise UserError(f"--loss-weight {kind}={weight}: no such loss term (the terms: {', '.join(WEIGHTS)})")
            if weight < 0:
                raise UserError(f"--loss-weight {kind}={weight}: must not be negative")
        positive = ("steps", "val_every", "val_items", "checkpoint_every", "audio_every", "log_every", "lr")
        for name in positive:
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be positive")
        for name in ("timbre_augment", "workers", "keep_every"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: must not be negative")
        if self.freeze_decoders and not (self.freeze_encoder and cfg.tokenizer.codebooks):
            raise UserError("frozen decoders leave only a tokenizer to train: the run needs --from and a tokenizer")
        if self.frames_only and not (self.freeze_encoder and cfg.spectral):
            raise UserError("--frames-only: needs --from, a spectral model to fine-tune")
        if self.loss_weights["realism"] and not (cfg.spectral and len(cfg.domains) > 1 and self.batch_size > 0):
            raise UserError(
                "--loss-weight realism: needs the translation path, a spectral model of several domains "
                "whose frame networks train (--batch-size above 0)"
            )
        recipe(cfg).check(self.crops)

    @property
    def crops(self) -> Crops:
        return Crops(
            self.crop, self.batch_size, self.render_crop, self.render_batch_size, self.seed, self.timbre_augment
        )

    @classmethod
    def layered(cls, *layers: dict) -> TrainConfig:
        """The settings of `layers` of options, each over the ones before (loss weights kind by
        kind); a layer may be the stored settings of a run from before the weights map."""
        merged: dict = {"loss_weights": dict(WEIGHTS)}
        for layer in layers:
            layer = dict(layer)
            weights = dict(layer.pop("loss_weights", None) or {})
            for old, kind in LEGACY_WEIGHTS.items():
                if old in layer:
                    weights[kind] = layer.pop(old)
            merged = {**merged, **layer, "loss_weights": {**merged["loss_weights"], **weights}}
        return cls(**merged)


# the loss-weight settings of runs before TrainConfig.loss_weights (and `umt train`'s flags for them)
LEGACY_WEIGHTS = {"confusion_weight": "confusion", "chroma_weight": "translation_chroma", "mmd_weight": "mmd"}


@dataclass
class Run:
    """The live state of a run: what a checkpoint saves and restores."""

    model: UMT
    classifier: DomainClassifier | None  # None when only a new decoder trains
    optimizer: torch.optim.Optimizer
    classifier_optimizer: torch.optim.Optimizer | None
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    trainable: list[str]  # the domains whose decoders train
    step: int = 0
    best_val: float = math.inf
    critics: nn.ModuleDict | None = None  # the realism critics (umt.modules.critic), when realism counts
    critic_optimizer: torch.optim.Optimizer | None = None
    mmd_pool: list[torch.Tensor] = field(default_factory=list)  # the independence loss's macro-batch so far


# model settings a fine-tuning run (--from) may set: a new tokenizer, or flutter heads beside
# the frame networks (the new layers start untrained, everything else from the base)
FINE_TUNE_SETTINGS = ("tokenizer.codebooks", "tokenizer.codebook_size", "tokenizer.layers", "frames.flutter")


def build_run(
    cfg: ModelConfig, tcfg: TrainConfig, trainable: list[str], device: torch.device, dtype: torch.dtype | None
) -> Run:
    torch.manual_seed(tcfg.seed)
    model = UMT(cfg).to(device)
    for decoder in model.decoders.values():
        decoder.activation_checkpointing = tcfg.activation_checkpointing
    train_encoder = trainable == cfg.domains and not tcfg.freeze_encoder
    fine_tuning = trainable == cfg.domains and tcfg.freeze_encoder  # `--from` alone (a tokenizer fitted, say)
    for name, param in model.named_parameters():
        if tcfg.flutter_only:
            param.requires_grad = ".flutter_out." in name
        elif tcfg.frames_only:
            param.requires_grad = name.startswith("decoders.") and ".renderer." not in name
        elif train_encoder:
            param.requires_grad = True
        elif name.startswith("tokenizer."):
            param.requires_grad = fine_tuning
        else:
            param.requires_grad = not tcfg.freeze_decoders and any(name.startswith(f"decoders.{d}.") for d in trainable)
    params = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.Adam(params, lr=tcfg.lr, **fused)
    classifier = classifier_optimizer = None
    if train_encoder:
        classifier = DomainClassifier(cfg).to(device)
        classifier_optimizer = torch.optim.Adam(classifier.parameters(), lr=tcfg.lr, **fused)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=tcfg.lr_decay ** (1 / 1000))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    run = Run(model, classifier, optimizer, classifier_optimizer, scheduler, scaler, trainable)
    if tcfg.loss_weights["realism"]:
        run.critics = critics(tcfg.critic_domains or cfg.domains, cfg.spectrum.bins, tcfg.critic).to(device)
        run.critic_optimizer = torch.optim.Adam(run.critics.parameters(), lr=tcfg.lr, betas=(0.5, 0.9), **fused)
    return run


def checkpoint_state(run: Run, cfg: ModelConfig, tcfg: TrainConfig) -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "config": cfg.to_dict(),
        "train": asdict(tcfg),
        "trainable": run.trainable,
        "step": run.step,
        "best_val": run.best_val,
        "model": run.model.state_dict(),
        "classifier": run.classifier.state_dict() if run.classifier else None,
        "optimizer": run.optimizer.state_dict(),
        "classifier_optimizer": run.classifier_optimizer.state_dict() if run.classifier_optimizer else None,
        "critics": run.critics.state_dict() if run.critics else None,
        "critic_optimizer": run.critic_optimizer.state_dict() if run.critic_optimizer else None,
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": rng,
    }


def restore(run: Run, state: dict) -> None:
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.classifier is not None:
        run.classifier.load_state_dict(state["classifier"])
        run.classifier_optimizer.load_state_dict(state["classifier_optimizer"])
    if run.critics is not None and state.get("critics"):  # a run that newly weights realism starts them afresh
        run.critics.load_state_dict(state["critics"])
        run.critic_optimizer.load_state_dict(state["critic_optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.step, run.best_val = state["step"], state["best_val"]
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])


def plan_run(
    manifest: Manifest, out: Path, options: dict, resume: bool, base: Path | None, add_domain: str | None
) -> tuple[ModelConfig, TrainConfig, list[str], dict | None, dict | None]:
    """Decide the model config, training config and trainable domains of a new or resumed run.

    Returns (config, train config, trainable domains, state to resume, base weights to start from).
    """
    overrides = {canonical(name): value for name, value in (options.get("model_overrides") or {}).items()}
    if (resume or add_domain) and overrides:
        raise UserError("--model-set applies to a new run (a resumed or extended model keeps its own settings)")
    if base is not None and not add_domain and set(overrides) - set(FINE_TUNE_SETTINGS):
        raise UserError(f"--from: only {', '.join(FINE_TUNE_SETTINGS)} can change on a trained model")
    state = run_state(out, resume, load_checkpoint)
    if state is not None:
        tcfg = TrainConfig.layered(state["train"], options)
        return ModelConfig.from_dict(state["config"]), tcfg, state["trainable"], state, None
    if add_domain:
        if base is None:
            raise UserError("--add-domain needs --from CKPT, the model to extend")
        base_state = load_model_state(base)
        cfg = ModelConfig.from_dict(base_state["config"])
        tcfg = TrainConfig.layered(_base_training(base_state, cfg), {"steps": TrainConfig.steps}, options)
        if add_domain in cfg.domains:
            raise UserError(f"--add-domain {add_domain}: {base} already has that domain")
        cfg.domains = [*cfg.domains, add_domain]
        return cfg, tcfg, [add_domain], None, base_state
    if base is not None:  # fine-tune every decoder of the base model on its frozen encoder
        base_state = load_model_state(base)
        cfg = ModelConfig.from_dict(base_state["config"]).with_settings(overrides)
        missing = [d for d in cfg.domains if d not in manifest.domains]
        if missing:
            raise UserError(
                f"--from {base}: its domain {', '.join(missing)} is not in the data ({', '.join(manifest.domains)})"
            )
        adds_flutter = cfg.frames.flutter and not ModelConfig.from_dict(base_state["config"]).frames.flutter
        # the base's own run may have been a fine-tuning of some parts: this one says its own
        fresh = {"steps": TrainConfig.steps, "freeze_decoders": False, "frames_only": False}
        tcfg = TrainConfig.layered(_base_training(base_state, cfg), fresh, options,
                                   {"freeze_encoder": True, "flutter_only": adds_flutter})  # fmt: skip
        return cfg, tcfg, list(cfg.domains), None, base_state
    name = options.get("preset", TrainConfig.preset)
    tcfg = TrainConfig.layered(PRESETS[name].training if name in PRESETS else {}, options)
    return preset(tcfg.preset, manifest.domains, **tcfg.model_overrides), tcfg, list(manifest.domains), None, None


def _base_training(base_state: dict, cfg: ModelConfig) -> dict:
    """The training settings a run from a base model starts from: the base's own, or for a
    checkpoint that does not record them, those of the preset its config is (else of its kind)."""
    if base_state.get("train"):
        return base_state["train"]
    stored = {k: v for k, v in settings_of(base_state["config"]).items() if k not in FINE_TUNE_SETTINGS}
    for name in PRESETS:
        config = settings_of(preset(name, cfg.domains).to_dict())
        if config == {**config, **stored}:  # every setting the base stores is the preset's
            return {"preset": name, **PRESETS[name].training}
    name = "spectral" if cfg.spectral else "small"
    return {"preset": name, **PRESETS[name].training}

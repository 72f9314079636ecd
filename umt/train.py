"""Training: every domain's decoder, the shared encoder and the domain-confusion classifier,
trained together in one process (or one process per GPU under torchrun).

One step, as in the paper:
  1. encode the augmented input of a batch of every domain; each decoder reconstructs its
     own domain's clean crop (teacher forcing) -> a loss per domain (UMT.forward);
  2. the classifier takes a step on the detached latents (learn to tell the domains apart);
  3. encoder and decoders take a step on  sum(losses) - lambda * CE_classifier,  the classifier
     held fixed: the encoder is rewarded for latents the classifier cannot place.
In the spectral recipe (the default) the losses are the L1 of each frame network's predicted
spectrum (--batch-size frame crops of --crop samples per domain) and the cross-entropy of each
renderer on the real spectrum of its domain (--render-batch-size crops of --render-crop); a
batch size of 0 leaves that part out, so the parts can also be trained one after the other.
With --add-domain, the encoder and the existing decoders are frozen and only the new
decoder trains (step 1 alone); with --from alone, every decoder (and a tokenizer, if the
model gets one: `umt tokenizer train`) trains on the frozen encoder. A model with a tokenizer
adds its commitment loss and, weighted by --mmd-weight, the independence loss between its
codebooks to step 3.

Distributed: torchrun starts one process per GPU; each holds the whole model (the encoder
and every decoder) and the classifier, wrapped in DDP, and takes its slice of every global
batch by index (see umt.data.crops), so N processes with batch B train exactly like one
process with batch N*B.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import Dataset
from tqdm import tqdm

from umt.audio import mu_law_decode
from umt.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from umt.data.crops import CropDataset, MultiDomainCrops, crop_loader
from umt.data.manifest import Manifest
from umt.data.spectra import SpectralCrops, SpectrumStore
from umt.errors import UserError
from umt.model import UMT, DomainClassifier, ModelConfig, describe, shift_right
from umt.presets import PRESETS, preset
from umt.quantization.mmd import independence_mmd
from umt.runtime import CPU, Process, autocast, autocast_dtype, start_process, stop_requests


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
    confusion_weight: float = 0.01  # lambda of the domain-confusion term
    # maximize: the paper's -lambda * CE of the classifier (unbounded: an encoder can drive it to
    # -infinity, and a spectral run did, diverging after 5,500 steps); uniform: lambda * CE of
    # the classifier against the uniform distribution (bounded below by log(domains))
    confusion: str = "maximize"
    # spectral: peak dB of a random spectral envelope on the encoder's input (0 = off), so the
    # latent cannot carry the input's timbre (umt.data.augment)
    timbre_augment: float = 0.0
    # spectral: weight of the translation-chroma term: each crop is also translated by another
    # domain's frame network, which must keep the crop's pitch classes (1 - chroma cosine; no
    # paired data needed). 0 = off: reconstruction alone never trains the translation path.
    chroma_weight: float = 0.0
    # the encoder keeps its weights and only the decoders train (`umt train --from BASE` alone:
    # fine-tuning decoders to a finished latent); no domain-confusion classifier then
    freeze_encoder: bool = False
    # with freeze_encoder: the decoders keep their weights too, and only the tokenizer trains
    # (`umt tokenizer train` without --tune-decoders), so the model translates as before
    freeze_decoders: bool = False
    # only the frame networks' flutter heads train, all else keeps its weights (set by
    # `--from BASE --model-set spectrum_flutter=true` on a base without them: the model then
    # translates as before, plus flutter, and its tokenizer and token LMs stay valid)
    flutter_only: bool = False
    # weight of the independence loss between a tokenizer's codebooks (umt.quantization.mmd;
    # Lemercier et al. 2024), compared at the parallel token LM's delays (codebook k, k frames
    # earlier) when mmd_delayed; measured and logged whenever the model has a tokenizer
    mmd_weight: float = 0.0
    mmd_delayed: bool = True
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


TOKENIZER_FIELDS = ("codebooks", "codebook_size")
# ModelConfig fields a fine-tuning run (--from) may set: a new tokenizer, or flutter heads
# beside the frame networks (the new layers start untrained, everything else from the base)
FINE_TUNE_FIELDS = (*TOKENIZER_FIELDS, "spectrum_flutter")

# ---------------------------------------------------------------- building a run


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
    return Run(model, classifier, optimizer, classifier_optimizer, scheduler, scaler, trainable)


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
    last = out / "last.pt"
    overrides = options.get("model_overrides") or {}
    if (resume or add_domain) and overrides:
        raise UserError("--model-set applies to a new run (a resumed or extended model keeps its own settings)")
    if base is not None and not add_domain and set(overrides) - set(FINE_TUNE_FIELDS):
        raise UserError(f"--from: only {', '.join(FINE_TUNE_FIELDS)} can change on a trained model")
    if resume:
        state = load_checkpoint(last)
        tcfg = TrainConfig(**{**state["train"], **options})
        return ModelConfig.from_dict(state["config"]), tcfg, state["trainable"], state, None
    if last.exists():
        raise UserError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")
    if add_domain:
        if base is None:
            raise UserError("--add-domain needs --from CKPT, the model to extend")
        base_state = load_model_state(base)
        cfg = ModelConfig.from_dict(base_state["config"])
        tcfg = TrainConfig(**{**_base_training(base_state, cfg), "steps": TrainConfig.steps, **options})
        if add_domain in cfg.domains:
            raise UserError(f"--add-domain {add_domain}: {base} already has that domain")
        cfg.domains = [*cfg.domains, add_domain]
        return cfg, tcfg, [add_domain], None, base_state
    if base is not None:  # fine-tune every decoder of the base model on its frozen encoder
        base_state = load_model_state(base)
        cfg = ModelConfig.from_dict({**base_state["config"], **overrides})
        missing = [d for d in cfg.domains if d not in manifest.domains]
        if missing:
            raise UserError(
                f"--from {base}: its domain {', '.join(missing)} is not in the data ({', '.join(manifest.domains)})"
            )
        adds_flutter = cfg.spectrum_flutter and not base_state["config"].get("spectrum_flutter", False)
        tcfg = TrainConfig(**{**_base_training(base_state, cfg), "steps": TrainConfig.steps, **options, "freeze_encoder": True,
                              "flutter_only": adds_flutter})  # fmt: skip
        return cfg, tcfg, list(cfg.domains), None, base_state
    name = options.get("preset", TrainConfig.preset)
    tcfg = TrainConfig(**{**(PRESETS[name].training if name in PRESETS else {}), **options})
    return preset(tcfg.preset, manifest.domains, **tcfg.model_overrides), tcfg, list(manifest.domains), None, None


def _base_training(base_state: dict, cfg: ModelConfig) -> dict:
    """The training settings a run from a base model starts from: the base's own, or for a
    checkpoint that does not record them, those of the preset its config is (else of its kind)."""
    if base_state.get("train"):
        return base_state["train"]
    stored = {k: v for k, v in base_state["config"].items() if k not in FINE_TUNE_FIELDS}
    for name in PRESETS:
        config = preset(name, cfg.domains).to_dict()
        if config == {**config, **stored}:  # every setting the base stores is the preset's
            return {"preset": name, **PRESETS[name].training}
    name = "spectral" if cfg.spectral else "small"
    return {"preset": name, **PRESETS[name].training}


# ---------------------------------------------------------------- one step


def train_step(
    run: Run, model, classifier, batch: dict[str, torch.Tensor], tcfg: TrainConfig, dtype, device
) -> dict[str, float]:
    """One optimisation step on a batch of every trainable domain ([D, B, ...] tensors, see
    UMT.forward). `model` and `classifier` are run.model and run.classifier, or their DDP wrappers."""
    with autocast(dtype, device):
        out = model(batch, run.trainable, translate=tcfg.chroma_weight > 0)
    stats = {k: v.item() for k, v in out.losses.items()}
    loss = sum(out.losses.values()) + sum(out.penalties.values())
    if out.translation_chroma is not None:
        stats["translation_chroma"] = out.translation_chroma.item()
        loss = loss + tcfg.chroma_weight * out.translation_chroma

    if classifier is not None and out.latent is not None:
        n_domains = len(run.trainable)
        labels = torch.arange(n_domains, device=device).repeat_interleave(out.latent.shape[0] // n_domains)
        # (2) the classifier learns on latents it cannot change
        with autocast(dtype, device):
            logits = classifier(out.latent.detach()).float()
        classifier_loss = F.cross_entropy(logits, labels)
        run.classifier_optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(classifier_loss).backward()
        run.scaler.step(run.classifier_optimizer)
        stats["classifier_loss"] = classifier_loss.item()
        stats["classifier_acc"] = (logits.argmax(-1) == labels).float().mean().item()
        # (3) the encoder is pushed away from what the classifier now knows
        if tcfg.confusion_weight:
            frozen = {k: v.detach() for k, v in run.classifier.named_parameters()}
            with autocast(dtype, device):
                adversary = torch.func.functional_call(run.classifier, frozen, (out.latent,)).float()
            if tcfg.confusion == "uniform":
                loss = loss - tcfg.confusion_weight * adversary.log_softmax(-1).mean()
            else:
                loss = loss - tcfg.confusion_weight * F.cross_entropy(adversary, labels)

    if out.tokens is not None:  # the dependence between codebooks: always measured, a loss if weighted
        k = out.tokens.streams.shape[0]
        delays = list(range(k)) if tcfg.mmd_delayed and out.tokens.streams.shape[2] > k else None
        with torch.set_grad_enabled(tcfg.mmd_weight > 0):
            mmd = independence_mmd(out.tokens.streams, delays)
        stats["mmd"] = mmd.item()
        if tcfg.mmd_weight:
            loss = loss + tcfg.mmd_weight * mmd
    stats.update({k: v.item() for k, v in out.penalties.items()})

    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.optimizer)
    stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(
        [p for p in run.model.parameters() if p.requires_grad], tcfg.clip
    ).item()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.step += 1
    stats["loss"] = loss.item()
    return stats


# ---------------------------------------------------------------- validation and audio


CONDITIONING = (
    "inputs",
    "levels_in",
    "render_levels",
)  # batch keys a decoder is conditioned on (besides its excitation)


@torch.no_grad()
def validate(
    model: UMT, classifier: DomainClassifier | None, val_sets: dict[str, Dataset], items: int, batch_size: int,
    dtype=None, device: torch.device = CPU,
) -> dict[str, float]:  # fmt: skip
    """Teacher-forced losses per domain on `items` crops of each dataset (UMT.forward: "ce/D"
    in nats per sample and "bits/D"; "spectrum/D" for frame networks), the conditioning gain
    of each ("gain/ce/D": the loss with another clip's conditioning minus the loss with the
    clip's own; near 0 means the decoder has stopped listening), the classifier's accuracy, and
    for frame networks of several domains "translation_chroma/D": D's crops translated by every
    other domain's frame network, their mean chroma distance to the crop (not in the score)."""
    was_training = model.training
    model.eval()
    totals: dict[str, list[float]] = {}  # key -> [sum of batch means x batch size, crops]

    def add(key: str, value: float, crops: int) -> None:
        total = totals.setdefault(key, [0.0, 0])
        total[0] += value * crops
        total[1] += crops

    correct = total = 0
    for domain, dataset in val_sets.items():
        others = [d for d in model.cfg.domains if d != domain]  # translation targets of this domain's crops
        for first in range(0, items, batch_size):
            batch = _collate([dataset[i] for i in range(first, min(first + batch_size, items))], device)
            crops = next(iter(batch.values())).shape[1]
            with autocast(dtype, device):
                out = model(batch, [domain])
                shuffled = model(_roll_conditioning(batch), [domain]) if crops > 1 else None
            for key, value in out.losses.items():
                add(key, value.item(), crops)
                if shuffled is not None:
                    add(f"gain/{key}", shuffled.losses[key].item() - value.item(), crops)
            if "levels" in batch and others:
                with autocast(dtype, device):
                    distance = sum(model.translation_chroma(out.latent, batch["levels"][0], t) for t in others) / len(
                        others
                    )
                add(f"translation_chroma/{domain}", distance.item(), crops)
            if classifier is not None and out.latent is not None:
                with autocast(dtype, device):
                    guess = classifier(out.latent).argmax(-1)
                correct += int((guess == model.cfg.domains.index(domain)).sum())
                total += guess.numel()
    sums = {key: value / crops for key, (value, crops) in totals.items()}
    results = dict(sums)
    for key in [k for k in sums if k.startswith("ce/")]:
        results["bits/" + key[3:]] = sums[key] / math.log(2)
    kinds = {k.split("/")[0] for k in sums if not k.startswith("gain/")}
    for kind in kinds:
        results[kind] = sum(v for k, v in sums.items() if k.startswith(kind + "/")) / len(val_sets)
    # the validation score (best.pt): the reconstruction losses' means over domains, summed
    results["score"] = sum(results[kind] for kind in kinds if kind != "translation_chroma")
    if total:
        results["classifier_acc"] = correct / total
    model.train(was_training)
    return results


def _collate(items: list, device: torch.device) -> dict[str, torch.Tensor]:
    """Dataset items of one domain -> a batch dict of [1, B, ...] tensors (UMT.forward's layout)."""
    if isinstance(items[0], dict):
        return {k: torch.stack([item[k] for item in items])[None].to(device) for k in items[0]}
    inputs, targets = (torch.stack(parts)[None].to(device) for parts in zip(*items))
    return {"inputs": inputs, "targets": targets}


def _roll_conditioning(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same targets, each conditioned on the next clip's conditioning (and excitation)."""
    rolled = {k: torch.roll(v, 1, dims=1) if k in CONDITIONING else v for k, v in batch.items()}
    if "amplitude" in batch:
        rolled["given_amplitude"], rolled["given_phase"] = (
            torch.roll(batch[k], 1, dims=1) for k in ("amplitude", "phase")
        )
    return rolled


@torch.no_grad()
def teacher_forced_clips(run: Run, val_sets: dict[str, CropDataset], device) -> dict[str, torch.Tensor]:
    """Per domain: the input crop and a reconstruction sampled from the decoder's
    teacher-forced distribution (each sample given the true past), as float audio."""
    run.model.eval()
    clips = {}
    for domain, dataset in val_sets.items():
        inputs, targets = (t.unsqueeze(0).to(device) for t in dataset[0])
        logits = run.model.decoders[domain](shift_right(targets), run.model.quantize(run.model.encode(inputs))[0])
        sampled = torch.distributions.Categorical(logits=logits.float()).sample()
        clips[f"{domain}/input"] = mu_law_decode(targets[0]).cpu()
        clips[f"{domain}/teacher_forced"] = mu_law_decode(sampled[0]).cpu()
    run.model.train()
    return clips


# ---------------------------------------------------------------- the loop


def train(
    prep: Path,
    out: Path,
    options: dict,
    device: str = "auto",
    resume: bool = False,
    base: Path | None = None,
    add_domain: str | None = None,
) -> Run:
    """Train (or resume) a run in `out`; returns the final state. `options` are TrainConfig fields."""
    proc = start_process(device)
    manifest = Manifest.read(prep)
    cfg, tcfg, trainable, state, base_state = plan_run(manifest, out, options, resume, base, add_domain)
    missing = [d for d in trainable if d not in manifest.domains]
    if missing:
        raise UserError(f"{prep}: has no domain {', '.join(missing)} (it has {', '.join(manifest.domains)})")
    check_crop(cfg, tcfg.crop)
    if tcfg.confusion not in ("maximize", "uniform"):
        raise UserError(f"--confusion {tcfg.confusion}: choose maximize or uniform")
    positive = ("steps", "val_every", "val_items", "checkpoint_every", "audio_every", "log_every", "lr")
    for name in positive:
        if getattr(tcfg, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} {getattr(tcfg, name)}: must be positive")
    for name in ("timbre_augment", "chroma_weight", "workers", "keep_every"):
        if getattr(tcfg, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} {getattr(tcfg, name)}: must not be negative")
    if tcfg.freeze_decoders and not (tcfg.freeze_encoder and cfg.codebooks):
        raise UserError("frozen decoders leave only a tokenizer to train: the run needs --from and a tokenizer")
    if cfg.spectral:
        check_crop(cfg, tcfg.render_crop, "--render-crop")
        if min(tcfg.batch_size, tcfg.render_batch_size) < 0:
            raise UserError("--batch-size and --render-batch-size must not be negative")
        if tcfg.batch_size <= 0 and tcfg.render_batch_size <= 0:
            raise UserError("--batch-size and --render-batch-size are both 0: nothing would train")
    elif tcfg.batch_size <= 0:
        raise UserError(f"--batch-size {tcfg.batch_size}: must be positive")
    dtype = autocast_dtype(tcfg.precision, proc.device)

    run = build_run(cfg, tcfg, trainable, proc.device, dtype)
    if base_state is not None:  # --from: everything but a new decoder or a new tokenizer comes from the base
        missing, unexpected = run.model.load_state_dict(base_state["model"], strict=False)
        new = (f"decoders.{add_domain}.", "tokenizer.") if add_domain else ("tokenizer.",)
        if unexpected or any(not key.startswith(new) and ".flutter_out." not in key for key in missing):
            raise UserError(f"--from {base}: its weights do not fit its config")
    if state is not None:
        restore(run, state)

    if proc.main and cfg.uses_spectrum:
        print(f"analysing the semitone spectrum of {len(manifest.files)} files", flush=True)
    train_sets = crop_datasets(run.model, manifest, tcfg, trainable, "train")
    val_sets = crop_datasets(run.model, manifest, tcfg, trainable, "val")
    remaining = tcfg.steps - run.step
    loader_batch = max(tcfg.batch_size, tcfg.render_batch_size) if cfg.spectral else tcfg.batch_size
    workers = 0 if cfg.spectral else tcfg.workers  # spectral items are slices of tensors in memory
    loader = crop_loader(
        MultiDomainCrops(list(train_sets.values())),
        loader_batch,
        workers,
        run.step,
        proc.rank,
        proc.world,
        max(0, remaining),
    )

    # A spectral run may leave the frame networks or the renderers out of a step (batch size 0).
    partial = cfg.spectral and min(tcfg.batch_size, tcfg.render_batch_size) <= 0
    model = DDP(run.model, find_unused_parameters=partial) if proc.world > 1 else run.model
    classifier = DDP(run.classifier) if proc.world > 1 and run.classifier is not None else run.classifier
    log = Logger(out, proc, tcfg, run.step, cfg)
    if proc.main:
        log.line(describe(cfg))
        if len(val_sets) < len(trainable):
            log.line(f"no validation crops for {', '.join(sorted(set(trainable) - set(val_sets)))}: not validated")

    render_samples = tcfg.render_batch_size * tcfg.render_crop if cfg.spectral else 0
    samples_per_step = len(trainable) * (tcfg.batch_size * tcfg.crop + render_samples) * proc.world
    with stop_requests() as stopping:
        try:
            tic = time.perf_counter()
            for batch in loader:
                _step(run, model, classifier, batch, tcfg, cfg, dtype, proc, log, val_sets, out, samples_per_step, tic)
                if _stop_agreed(stopping, proc):
                    break
                tic = time.perf_counter()  # validation and saving do not count against throughput
        except Exception:
            if not stopping.is_set():  # else a DataLoader worker that the same Ctrl-C ended
                raise
        if stopping.is_set():
            if proc.main:
                save_checkpoint(out / "last.pt", checkpoint_state(run, cfg, tcfg))
                log.line(f"interrupted at step {run.step}: saved {out / 'last.pt'}; continue with --resume")
                log.close()
            raise KeyboardInterrupt
    if proc.main:
        log.line(f"step {run.step}: {out / 'last.pt'}")
        log.close()
    if proc.world > 1:
        dist.barrier()
    return run


def _step(run: Run, model, classifier, batch, tcfg: TrainConfig, cfg: ModelConfig, dtype, proc: Process, log: Logger,
          val_sets: dict, out: Path, samples_per_step: int, started: float) -> None:  # fmt: skip
    """One training step (its batch fetched since `started`), and on the main process its log
    line, validation and checkpoints."""
    batch = step_batch(batch, tcfg, cfg.spectral, proc.device)
    stats = train_step(run, model, classifier, batch, tcfg, dtype, proc.device)
    if not proc.main:
        return
    stats["samples_per_s"] = samples_per_step / (time.perf_counter() - started)
    stats["lr"] = run.scheduler.get_last_lr()[0]
    log.train(run.step, stats)
    last_step = run.step == tcfg.steps
    if val_sets and (run.step % tcfg.val_every == 0 or last_step):
        results = validate(run.model, run.classifier, val_sets, tcfg.val_items, VAL_BATCH, dtype, proc.device)
        log.validation(run.step, results)
        if results["score"] < run.best_val:
            run.best_val = results["score"]
            save_checkpoint(out / "best.pt", checkpoint_state(run, cfg, tcfg))
    if val_sets and not cfg.spectral and (run.step % tcfg.audio_every == 0 or last_step):
        log.audio(run.step, teacher_forced_clips(run, val_sets, proc.device), cfg.sample_rate)
    if run.step % tcfg.checkpoint_every == 0 or last_step:
        save_checkpoint(out / "last.pt", checkpoint_state(run, cfg, tcfg))
    if tcfg.keep_every and run.step % tcfg.keep_every == 0:
        save_checkpoint(out / f"step{run.step}.pt", checkpoint_state(run, cfg, tcfg))


def _stop_agreed(stopping, proc: Process) -> bool:
    """Whether any process was asked to stop (all of them then stop after the same step)."""
    if proc.world == 1:
        return stopping.is_set()
    flag = torch.tensor([float(stopping.is_set())], device=proc.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if flag.item():
        stopping.set()
    return stopping.is_set()


VAL_BATCH = 8  # validation crops per forward pass


def crop_datasets(
    model: UMT, manifest: Manifest, tcfg: TrainConfig, domains: list[str], split: str
) -> dict[str, Dataset]:
    """Per domain with a long enough file in `split`: training crops (augmented on the train split).

    A spectral model's items hold a frame crop and a render crop (SpectralCrops); the
    paper's, a pair of code crops (CropDataset)."""
    cfg = model.cfg
    augment = split == "train"
    sets: dict[str, Dataset] = {}
    for d in domains:
        longest = max(tcfg.crop, tcfg.render_crop) if cfg.spectral else tcfg.crop
        if not any(e.samples >= longest for e in manifest.entries(d, split)):
            if split == "train":
                raise UserError(f"domain {d!r}: no train file of at least {longest} samples in {manifest.root}")
            continue
        if cfg.spectral:
            store = SpectrumStore(manifest, d, split, model.spectrum)
            sets[d] = SpectralCrops(store, d, tcfg.crop // cfg.pool, tcfg.render_crop // cfg.pool, augment, tcfg.seed,
                                   tcfg.timbre_augment)  # fmt: skip
        else:
            sets[d] = CropDataset(manifest, d, split, tcfg.crop, augment=augment, seed=tcfg.seed)
    return sets


def step_batch(batch, tcfg: TrainConfig, spectral: bool, device: torch.device) -> dict[str, torch.Tensor]:
    """A loader batch ([B, D, ...] per key) -> UMT.forward's [D, B, ...] on the device, with
    only the parts that train: --batch-size frame crops and --render-batch-size render crops."""
    if not spectral:
        inputs, targets = batch
        batch = {"inputs": inputs, "targets": targets}
    out = {}
    for key, value in batch.items():
        rows = tcfg.render_batch_size if key in RENDER_KEYS else tcfg.batch_size
        if rows > 0:
            out[key] = value[:rows].transpose(0, 1).to(device, non_blocking=True)
    return out


RENDER_KEYS = ("audio", "render_levels", "amplitude", "phase")
LOSS_KINDS = ("ce", "spectrum", "flutter")  # per-domain losses (UMT.forward) logged as means over domains


def _means(stats: dict[str, float]) -> dict[str, float]:
    """Per kind of loss (LOSS_KINDS), the mean over domains."""
    kinds: dict[str, list[float]] = {}
    for key, value in stats.items():
        if key.count("/") == 1 and key.split("/")[0] in LOSS_KINDS:
            kinds.setdefault(key.split("/")[0], []).append(value)
    return {k: sum(v) / len(v) for k, v in kinds.items()}


class Logger:
    """TensorBoard scalars and audio, a tqdm bar on a terminal, plain lines otherwise."""

    def __init__(self, out: Path, proc: Process, tcfg: TrainConfig, start: int, cfg: ModelConfig):
        self.tcfg = tcfg
        self.enabled = proc.main
        self.writer = None
        self.bar = None
        if not self.enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(out / "tensorboard"))
        if sys.stderr.isatty():
            self.bar = tqdm(total=tcfg.steps, initial=start, desc="train", unit="step", dynamic_ncols=True)

    def line(self, text: str) -> None:
        for row in text.splitlines():
            (self.bar.write if self.bar else print)(row, **({} if self.bar else {"flush": True}))

    def train(self, step: int, stats: dict[str, float]) -> None:
        for key, value in stats.items():
            self.writer.add_scalar(f"train/{key}", value, step)
        means = _means(stats)
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(
                **{k: f"{v:.3f}" for k, v in means.items()}, acc=f"{stats.get('classifier_acc', float('nan')):.2f}"
            )
        elif step % self.tcfg.log_every == 0 or step == self.tcfg.steps:
            acc = f" classifier_acc {stats['classifier_acc']:.2f}" if "classifier_acc" in stats else ""
            extra = ("commitment", "mmd", "translation_chroma")
            losses = " ".join(
                f"{k} {v:.4f}" for k, v in [*means.items(), *((k, stats[k]) for k in extra if k in stats)]
            )
            self.line(
                f"step {step}/{self.tcfg.steps} {losses}{acc} lr {stats['lr']:.2e} {stats['samples_per_s']:.0f} samples/s"
            )

    def validation(self, step: int, results: dict[str, float]) -> None:
        for key, value in results.items():
            self.writer.add_scalar(f"val/{key}", value, step)
        parts = []
        for kind in LOSS_KINDS:
            if kind in results:
                per_domain = " ".join(
                    f"{k.split('/')[-1]} {v:.3f}" for k, v in results.items() if k.startswith(kind + "/")
                )
                gain = [v for k, v in results.items() if k.startswith(f"gain/{kind}/")]
                gain_text = f", conditioning gain {sum(gain) / len(gain):.3f}" if gain else ""
                bits = f" nats ({results[kind] / math.log(2):.3f} bits)" if kind == "ce" else ""
                parts.append(f"{kind} {results[kind]:.4f}{bits}: {per_domain}{gain_text}")
        if "translation_chroma" in results:
            parts.append(f"translation chroma distance {results['translation_chroma']:.4f}")
        acc = f"; classifier_acc {results['classifier_acc']:.2f}" if "classifier_acc" in results else ""
        self.line(f"val step {step}: " + "; ".join(parts) + acc)

    def audio(self, step: int, clips: dict[str, torch.Tensor], sample_rate: int) -> None:
        for name, clip in clips.items():
            self.writer.add_audio(name, clip.unsqueeze(0), step, sample_rate=sample_rate)

    def close(self) -> None:
        if self.bar:
            self.bar.close()
        self.writer.close()


def check_crop(cfg: ModelConfig, crop: int, flag: str = "--crop") -> None:
    """A crop (samples) must be whole latent frames."""
    if crop % cfg.pool or crop <= 0:
        raise UserError(f"{flag} {crop}: must be a positive multiple of the latent frame ({cfg.pool} samples)")

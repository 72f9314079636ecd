"""The training loop: processes, the data loader, steps, validation, checkpoints (also on
Ctrl-C), the stop agreement between DDP processes, and the log."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from umt.checkpoint import save_checkpoint
from umt.data.crops import MultiDomainCrops, crop_loader
from umt.data.manifest import Manifest
from umt.errors import UserError
from umt.model import ModelConfig, describe
from umt.runtime import Process, autocast_dtype, start_process, stop_requests
from umt.training.config import Run, TrainConfig, build_run, check_crop, checkpoint_state, plan_run, restore
from umt.training.data import crop_datasets, step_batch
from umt.training.step import train_step
from umt.training.validation import VAL_BATCH, teacher_forced_clips, validate


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

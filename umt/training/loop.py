"""The model's training run: its processes, data loader and DDP wrappers, and its solver
(umt.training.solver): the adversarial step, validation, and the log."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import Dataset
from tqdm import tqdm

from umt.audio import mu_law_decode
from umt.data.crops import MultiDomainCrops, crop_loader
from umt.data.manifest import Manifest
from umt.errors import UserError
from umt.model import describe, shift_right
from umt.recipes import recipe
from umt.runtime import Process, autocast_dtype, start_process
from umt.training.config import Run, TrainConfig, build_run, checkpoint_state, plan_run, restore
from umt.training.solver import Solver
from umt.training.step import train_step
from umt.validation import VAL_BATCH, validate


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
    tcfg.check(cfg)
    method, crops = recipe(cfg), tcfg.crops
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
    train_sets = method.datasets(run.model, manifest, trainable, "train", crops)
    val_sets = method.datasets(run.model, manifest, trainable, "val", crops)
    remaining = tcfg.steps - run.step
    workers = tcfg.workers if method.loader_workers else 0
    loader = crop_loader(
        MultiDomainCrops(list(train_sets.values())),
        method.loader_batch(crops),
        workers,
        run.step,
        proc.rank,
        proc.world,
        max(0, remaining),
    )

    # A spectral run may leave the frame networks or the renderers out of a step (batch size 0).
    partial = min(crops.batch_size, crops.render_batch_size if method.render_keys else 1) <= 0
    model = DDP(run.model, find_unused_parameters=partial) if proc.world > 1 else run.model
    classifier = DDP(run.classifier) if proc.world > 1 and run.classifier is not None else run.classifier
    solver = ModelSolver(run, model, classifier, tcfg, dtype, proc, out, val_sets)
    if proc.main:
        solver.line(describe(cfg))
        if len(val_sets) < len(trainable):
            solver.line(f"no validation crops for {', '.join(sorted(set(trainable) - set(val_sets)))}: not validated")
    solver.fit(method.batch(batch, crops, proc.device) for batch in loader)
    if proc.main:
        solver.line(f"step {run.step}: {out / 'last.pt'}")
    return run


class ModelSolver(Solver):
    """The model's training (see umt.training): the adversarial step, validation, and the log
    (TensorBoard, a bar on a terminal, lines otherwise). `model` and `classifier` are
    run.model and run.classifier, or their DDP wrappers."""

    def __init__(self, run: Run, model, classifier, tcfg: TrainConfig, dtype: torch.dtype | None, proc: Process,
                 out: Path, val_sets: dict[str, Dataset]):  # fmt: skip
        self.run, self.model, self.classifier, self.tcfg, self.dtype = run, model, classifier, tcfg, dtype
        self.cfg, self.val_sets = run.model.cfg, val_sets
        super().__init__(out, tcfg.steps, tcfg.checkpoint_every, tcfg.val_every, tcfg.keep_every, proc, run.step,
                         run.best_val)  # fmt: skip
        self.log = Logger(out, proc, tcfg, run.step)
        self.samples_per_step = recipe(self.cfg).samples_per_step(tcfg.crops, len(run.trainable)) * proc.world
        self.tic = time.perf_counter()

    # the run's step and best score are the Run's (they travel in its checkpoint)
    step = property(lambda self: self.run.step, lambda self, value: setattr(self.run, "step", value))
    best = property(lambda self: self.run.best_val, lambda self, value: setattr(self.run, "best_val", value))

    def run_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        stats = train_step(self.run, self.model, self.classifier, batch, self.tcfg, self.dtype, self.proc.device)
        stats["samples_per_s"] = self.samples_per_step / (time.perf_counter() - self.tic)
        stats["lr"] = self.run.scheduler.get_last_lr()[0]
        return stats

    def advance(self, batch: dict[str, torch.Tensor]) -> None:
        super().advance(batch)
        self.tic = time.perf_counter()  # validation and saving do not count against throughput

    def log_step(self, stats: dict[str, float]) -> None:
        self.log.train(self.step, stats)
        due = self.step % self.tcfg.audio_every == 0 or self.step == self.steps
        if self.val_sets and recipe(self.cfg).tensorboard_audio and due:
            self.log.audio(
                self.step, teacher_forced_clips(self.run, self.val_sets, self.proc.device), self.cfg.sample_rate
            )

    def validate(self) -> float | None:
        if not self.val_sets:
            return None
        run, tcfg = self.run, self.tcfg
        results = validate(
            run.model,
            run.classifier,
            self.val_sets,
            tcfg.val_items,
            VAL_BATCH,
            self.dtype,
            self.proc.device,
            quantized=not tcfg.frames_only,
        )
        self.log.validation(self.step, results)
        return results["score"]

    def state(self) -> dict:
        return checkpoint_state(self.run, self.cfg, self.tcfg)

    def line(self, text: str) -> None:
        self.log.line(text)

    def close(self) -> None:
        self.log.close()


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

    def __init__(self, out: Path, proc: Process, tcfg: TrainConfig, start: int):
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
            extra = ("commitment", "translation_chroma", "confusion", "mmd", "realism", "critic_loss")
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
            self.bar = None
        if self.writer:
            self.writer.close()
            self.writer = None


@torch.no_grad()
def teacher_forced_clips(run: Run, val_sets: dict[str, Dataset], device: torch.device) -> dict[str, torch.Tensor]:
    """Per domain (the WaveNet recipe): the input crop and a reconstruction sampled from the
    decoder's teacher-forced distribution (each sample given the true past), as float audio."""
    run.model.eval()
    clips = {}
    for domain, dataset in val_sets.items():
        inputs, targets = (dataset[0][key].unsqueeze(0).to(device) for key in ("inputs", "targets"))
        logits = run.model.decoders[domain](shift_right(targets), run.model.quantize(run.model.encode(inputs))[0])
        sampled = torch.distributions.Categorical(logits=logits.float()).sample()
        clips[f"{domain}/input"] = mu_law_decode(targets[0]).cpu()
        clips[f"{domain}/teacher_forced"] = mu_law_decode(sampled[0]).cpu()
    run.model.train()
    return clips

"""An independent judge: a domain classifier that is not part of the translation model.

A small CNN on log-mel spectrograms (nnAudio, so it runs on the GPU too), trained on real
audio of the train split and scored on the test split. It decides which domain a
translation sounds like; it is a fair judge only when its test accuracy on real audio is high.

It hears the audio as it is (float samples, never through the mu-law coding a WaveNet may
use, which would teach it that coding's hiss as part of every instrument), and it may train
on several corpora of the same domains at once (the same pieces rendered through several
soundfonts: `umt make-bench --soundfont`), so that it learns instruments rather than one
soundfont's samples. Its accuracy on a corpus it never trained on (`holdout`) says whether it did.

An instrument judge alone does not hear hiss: trained on clean audio, it tells instruments apart
whatever lies under them, and hears a hissing WaveNet organ as organ. With `hiss_db` it learns
one class more, "hiss": crops of every domain with coloured noise added between `hiss_db` and
HISS_LOUDEST_DB below their RMS. A translation it hears as hiss is not heard as its target.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from umt.checkpoint import load_checkpoint, save_checkpoint
from umt.data.manifest import FileEntry, Manifest
from umt.errors import UserError
from umt.progress import Progress
from umt.training.solver import Solver, run_state


@dataclass
class JudgeConfig:
    domains: list[str]
    sample_rate: int = 16000
    n_mels: int = 64
    n_fft: int = 1024
    hop: int = 256
    channels: int = 32
    crop_seconds: float = 2.0
    # training only: a random tilt of up to this many dB across the mel bands of each crop, so
    # that a soundfont's overall brightness (or a room's, or a microphone's) is not a cue
    tilt_db: float = 0.0
    # > 0: a class "hiss" beside the domains, learnt from crops with noise added from this many dB
    # below their RMS up to HISS_LOUDEST_DB below (module docstring)
    hiss_db: float = 0.0

    @property
    def classes(self) -> list[str]:
        """What the judge tells apart: the domains, and "hiss" when it learnt it."""
        return self.domains + [HISS] if self.hiss_db else list(self.domains)

    @property
    def crop(self) -> int:
        """Samples in one window the judge classifies."""
        return int(self.crop_seconds * self.sample_rate)


HISS = "hiss"  # the judge's class for audio under audible noise
HISS_LOUDEST_DB = 20.0  # the loudest noise (dB below the crop's RMS) of the hiss class


def add_hiss(crops: np.ndarray, quietest_db: float, rng: np.random.Generator) -> np.ndarray:
    """Each crop [B, T] with noise at a level drawn uniformly (in dB) between `quietest_db` and
    HISS_LOUDEST_DB below its RMS, coloured by a spectral slope drawn from -6 to +6 dB per octave
    (brown-ish to blue-ish, white in the middle), so that the judge learns hiss, not one noise."""
    count, length = crops.shape
    freqs = np.fft.rfftfreq(length)
    freqs[0] = freqs[1]
    power_slopes = rng.uniform(-2.0, 2.0, size=(count, 1))  # power ~ f ** slope: 3 dB per octave per unit
    spectra = np.fft.rfft(rng.standard_normal((count, length)), axis=1) * freqs ** (power_slopes / 2)
    noise = np.fft.irfft(spectra, n=length, axis=1)
    noise /= np.sqrt(np.mean(noise**2, axis=1, keepdims=True)) + 1e-12
    rms = np.sqrt(np.mean(crops.astype(np.float64) ** 2, axis=1, keepdims=True))
    level = 10 ** (-rng.uniform(HISS_LOUDEST_DB, quietest_db, size=(count, 1)) / 20)
    return np.clip(crops + noise * rms * level, -1, 1).astype(np.float32)


class LogMel(nn.Module):
    """log(mel power + 1e-5) [B, n_mels, frames] of audio [B, T]."""

    def __init__(self, sample_rate: int, n_fft: int, hop: int, n_mels: int):
        super().__init__()
        from nnAudio.features import MelSpectrogram

        self.mel = MelSpectrogram(sr=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, verbose=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(audio) + 1e-5)


class Judge(nn.Module):
    def __init__(self, cfg: JudgeConfig):
        super().__init__()
        self.cfg = cfg
        self.features = LogMel(cfg.sample_rate, cfg.n_fft, cfg.hop, cfg.n_mels)
        c = cfg.channels
        blocks: list[nn.Module] = []
        for cin, cout in ((1, c), (c, c), (c, 2 * c), (2 * c, 2 * c)):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
        self.net = nn.Sequential(*blocks)
        self.head = nn.Linear(2 * c, len(cfg.classes))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, T] -> logits [B, classes]."""
        x = self.features(audio)
        if self.training and self.cfg.tilt_db:
            slope = (torch.rand(x.shape[0], 1, 1, device=x.device) * 2 - 1) * self.cfg.tilt_db * math.log(10) / 10
            x = (
                x + slope * torch.linspace(-0.5, 0.5, x.shape[1], device=x.device)[:, None]
            )  # log power: dB * ln(10) / 10
        x = (x - x.mean(dim=(1, 2), keepdim=True)) / (x.std(dim=(1, 2), keepdim=True) + 1e-5)  # level-invariant
        x = self.net(x.unsqueeze(1))
        return self.head(x.mean(dim=(2, 3)))

    @torch.no_grad()
    def classify(self, clips: list[np.ndarray]) -> np.ndarray:
        """Class index (cfg.classes) of each clip (any length): logits averaged over crop-length
        windows."""
        self.eval()
        crop = self.cfg.crop
        device = self.head.weight.device
        guesses = []
        for clip in clips:
            windows = max(1, math.ceil(clip.size / crop))
            padded = np.zeros(windows * crop, dtype=np.float32)
            padded[: clip.size] = clip
            logits = self(torch.from_numpy(padded).view(windows, crop).to(device))
            guesses.append(int(logits.mean(0).argmax()))
        return np.array(guesses)


class RealCrops:
    """Random crops of real audio (float32, as decoded) of one domain's split in one or more
    corpora: files drawn in proportion to the crops they hold, positions uniform."""

    def __init__(self, manifests: list[Manifest], domain: str, split: str, crop: int):
        self.files: list[tuple[Manifest, FileEntry]] = [
            (m, e) for m in manifests for e in m.entries(domain, split) if e.samples >= crop
        ]
        if not self.files:
            roots = ", ".join(str(m.root) for m in manifests)
            raise UserError(
                f"domain {domain!r}: no {split} file of at least {crop / manifests[0].sample_rate:g} s in {roots}"
            )
        self.crop = crop
        self.weights = np.array([e.samples - crop + 1 for _, e in self.files], dtype=np.float64)
        self.weights /= self.weights.sum()

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """[count, crop] float32 crops."""
        crops = []
        for k in rng.choice(len(self.files), size=count, p=self.weights):
            manifest, entry = self.files[k]
            start = int(rng.integers(entry.samples - self.crop + 1))
            crops.append(manifest.excerpt(entry, start, self.crop))
        return np.stack(crops)


JUDGE_CHECKPOINT_EVERY = 100  # steps between saves of a judge run's last.pt
JUDGE_RUN = "umt-judge-run"  # the kind of a judge's last.pt (the finished judge is judge.pt, "umt-judge")


def train_judge(preps: list[Path], out: Path, steps: int = 600, batch_per_domain: int = 8, seed: int = 0,
                device: str | torch.device = "cpu", test_clips: int = 64, crop_seconds: float = 2.0,
                holdout: list[Path] = (), tilt_db: float = 0.0, hiss_db: float = 0.0,
                resume: bool = False) -> dict:  # fmt: skip
    """Train (or resume: out/last.pt) on the train split of every corpus in `preps` (the same
    domains in each), score on test-split crops of each and of every `holdout` corpus, save
    out/judge.pt; returns the scores."""
    manifests = [Manifest.read(p) for p in preps]
    held_out = [Manifest.read(p) for p in holdout]
    first = manifests[0]
    for m in manifests[1:] + held_out:
        if m.sample_rate != first.sample_rate or not set(first.domains) <= set(m.domains):
            raise UserError(f"{m.root}: every corpus needs the domains of {first.root} ({', '.join(first.domains)}) "
                            f"at {first.sample_rate} Hz")  # fmt: skip
    cfg = JudgeConfig(domains=list(first.domains), sample_rate=first.sample_rate, crop_seconds=crop_seconds,
                      tilt_db=tilt_db, hiss_db=hiss_db)  # fmt: skip
    shortest = 16 * cfg.hop  # four 2x poolings need 16 spectrogram frames
    if cfg.crop < shortest:
        raise UserError(f"--crop-seconds {crop_seconds:g}: the judge needs at least {shortest / cfg.sample_rate:.2f} s")
    state = run_state(out, resume, load_checkpoint)
    if state is not None and state.get("kind") != JUDGE_RUN:
        raise UserError(f"{out / 'last.pt'}: not a judge's run")
    torch.manual_seed(seed)
    solver = JudgeSolver(Judge(cfg).to(device), out, steps, np.random.default_rng(seed))
    if state is not None:
        solver.restore(state)
    train = [RealCrops(manifests, d, "train", cfg.crop) for d in cfg.domains]
    labels = torch.arange(len(cfg.classes), device=device).repeat_interleave(batch_per_domain)
    batches = ((solver.crops(train, batch_per_domain), labels) for _ in range(solver.step, steps))
    solver.judge.train()
    solver.progress = Progress(steps - solver.step, "judge", "step")
    solver.fit(batches)
    judge = solver.judge
    per_corpus = {str(m.root): score_judge(judge, m, "test", test_clips, seed) for m in manifests}
    per_holdout = {str(m.root): score_judge(judge, m, "test", test_clips, seed) for m in held_out}
    scores = {
        "test_accuracy": float(np.mean([s["test_accuracy"] for s in per_corpus.values()])),
        "hiss_accuracy": float(np.mean([s["hiss_accuracy"] for s in per_corpus.values()])) if hiss_db else None,
        "per_domain_accuracy": {
            d: float(np.mean([s["per_domain_accuracy"][d] for s in per_corpus.values()])) for d in cfg.domains
        },
        "corpora": per_corpus,
        "holdout": per_holdout,
    }
    save_checkpoint(
        out / "judge.pt", {"kind": "umt-judge", "config": asdict(cfg), "model": judge.state_dict(), **scores}
    )
    return scores


class JudgeSolver(Solver):
    """The judge's training: Adam on the cross-entropy of random real crops of every domain;
    no validation (it is scored on the test splits when it ends)."""

    def __init__(self, judge: Judge, out: Path, steps: int, rng: np.random.Generator):
        super().__init__(out, steps, checkpoint_every=JUDGE_CHECKPOINT_EVERY, val_every=steps)
        self.judge, self.rng = judge, rng
        self.device = judge.head.weight.device
        self.optimizer = torch.optim.Adam(judge.parameters(), lr=1e-3)
        self.progress: Progress | None = None  # set when it starts: the steps left

    def crops(self, train: list[RealCrops], count: int) -> torch.Tensor:
        """[classes * count, crop]: `count` crops of every domain, drawn from the run's generator,
        then (a hiss judge) `count` of them again with hiss added."""
        real = np.concatenate([crops.sample(count, self.rng) for crops in train])
        if self.judge.cfg.hiss_db:
            chosen = real[self.rng.choice(len(real), size=count, replace=False)]
            real = np.concatenate([real, add_hiss(chosen, self.judge.cfg.hiss_db, self.rng)])
        return torch.from_numpy(real).to(self.device)

    def run_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        audio, labels = batch
        loss = F.cross_entropy(self.judge(audio), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def log_step(self, stats: dict[str, float]) -> None:
        self.progress.update()

    def state(self) -> dict:
        return {"kind": JUDGE_RUN, "config": asdict(self.judge.cfg), "model": self.judge.state_dict(),
                "optimizer": self.optimizer.state_dict(), "step": self.step, "rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state()}  # fmt: skip

    def restore(self, state: dict) -> None:
        if JudgeConfig(**state["config"]) != self.judge.cfg:  # a run of before a setting existed has its default
            raise UserError(f"{self.out / 'last.pt'}: a judge of other settings; resume it with the same ones")
        self.judge.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"].cpu())

    def line(self, text: str) -> None:
        self.progress.write(text)

    def close(self) -> None:
        self.progress.close()


def score_judge(judge: Judge, manifest: Manifest, split: str, clips: int, seed: int) -> dict:
    """Accuracy of the judge on `clips` crops per domain of real audio from `split` and, a hiss
    judge, the share of the same crops with hiss added (add_hiss) that it hears as hiss."""
    per_domain, heard_hiss = {}, []
    hiss_rng = np.random.default_rng(seed + 2)
    for index, domain in enumerate(judge.cfg.domains):
        audio = RealCrops([manifest], domain, split, judge.cfg.crop).sample(clips, np.random.default_rng(seed + 1))
        per_domain[domain] = float((judge.classify(list(audio)) == index).mean())
        if judge.cfg.hiss_db:
            hissing = add_hiss(audio, judge.cfg.hiss_db, hiss_rng)
            heard_hiss.append(float((judge.classify(list(hissing)) == judge.cfg.classes.index(HISS)).mean()))
    return {"test_accuracy": float(np.mean(list(per_domain.values()))), "per_domain_accuracy": per_domain,
            "hiss_accuracy": float(np.mean(heard_hiss)) if heard_hiss else None}  # fmt: skip


TRUSTED_JUDGE = 0.95  # test accuracy on real audio below which a judge's verdicts are flagged


def load_judge(path: Path, device: str | torch.device = "cpu") -> tuple[Judge, dict]:
    state = load_checkpoint(path, device)
    if state.get("kind") != "umt-judge":
        raise UserError(f"{path}: not a judge (train one with `umt judge train`)")
    judge = Judge(JudgeConfig(**state["config"])).to(device)
    judge.load_state_dict(state["model"])
    return judge.eval(), state

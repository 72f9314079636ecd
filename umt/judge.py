"""An independent judge: a domain classifier that is not part of the translation model.

A small CNN on log-mel spectrograms (nnAudio, so it runs on the GPU too), trained on real
audio of the train split and scored on the test split. It decides which domain a
translation sounds like; it is a fair judge only when its test accuracy on real audio is high.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from umt.audio import mu_law_decode
from umt.checkpoint import load_checkpoint, save_checkpoint
from umt.data.crops import CropDataset, MultiDomainCrops, crop_loader
from umt.data.manifest import Manifest
from umt.errors import UserError
from umt.progress import Progress


@dataclass
class JudgeConfig:
    domains: list[str]
    sample_rate: int = 16000
    n_mels: int = 64
    n_fft: int = 1024
    hop: int = 256
    channels: int = 32
    crop_seconds: float = 2.0

    @property
    def crop(self) -> int:
        """Samples in one window the judge classifies."""
        return int(self.crop_seconds * self.sample_rate)


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
        self.head = nn.Linear(2 * c, len(cfg.domains))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, T] -> logits [B, domains]."""
        x = self.features(audio)
        x = (x - x.mean(dim=(1, 2), keepdim=True)) / (x.std(dim=(1, 2), keepdim=True) + 1e-5)  # level-invariant
        x = self.net(x.unsqueeze(1))
        return self.head(x.mean(dim=(2, 3)))

    @torch.no_grad()
    def classify(self, clips: list[np.ndarray]) -> np.ndarray:
        """Domain index of each clip (any length): logits averaged over crop-length windows."""
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


def _real_audio(dataset: CropDataset, indices: range) -> torch.Tensor:
    """Clean crops as floats, through mu-law like every translation the judge will hear."""
    return torch.stack([mu_law_decode(dataset[i][1]) for i in indices])


def train_judge(prep: Path, out: Path, steps: int = 600, batch_per_domain: int = 8, seed: int = 0,
                device: str | torch.device = "cpu", test_clips: int = 64, crop_seconds: float = 2.0) -> dict:  # fmt: skip
    """Train on the train split, score on test-split crops, save out/judge.pt; returns the scores."""
    manifest = Manifest.read(prep)
    cfg = JudgeConfig(domains=list(manifest.domains), sample_rate=manifest.sample_rate, crop_seconds=crop_seconds)
    crop = cfg.crop
    shortest = 16 * cfg.hop  # four 2x poolings need 16 spectrogram frames
    if crop < shortest:
        raise UserError(f"--crop-seconds {crop_seconds:g}: the judge needs at least {shortest / cfg.sample_rate:.2f} s")
    torch.manual_seed(seed)
    judge = Judge(cfg).to(device)
    optimizer = torch.optim.Adam(judge.parameters(), lr=1e-3)
    train = MultiDomainCrops([CropDataset(manifest, d, "train", crop, augment=False, seed=seed) for d in cfg.domains])
    labels = torch.arange(len(cfg.domains), device=device).repeat(batch_per_domain)
    judge.train()
    with Progress(steps, "judge", "step") as progress:
        for _, targets in crop_loader(train, batch_per_domain, steps=steps):
            audio = mu_law_decode(targets.flatten(0, 1)).to(device)  # [B * D, crop], domains interleaved
            loss = F.cross_entropy(judge(audio), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            progress.update()
    scores = score_judge(judge, manifest, "test", test_clips, seed)
    save_checkpoint(out / "judge.pt", {"kind": "umt-judge", "config": asdict(cfg), "model": judge.state_dict(), **scores})
    return scores


def score_judge(judge: Judge, manifest: Manifest, split: str, clips: int, seed: int) -> dict:
    """Accuracy of the judge on `clips` crops per domain of real audio from `split`."""
    per_domain = {}
    for index, domain in enumerate(judge.cfg.domains):  # CropDataset refuses a split with no file that long
        dataset = CropDataset(manifest, domain, split, judge.cfg.crop, augment=False, seed=seed + 1)
        audio = _real_audio(dataset, range(clips))
        per_domain[domain] = float((judge.classify(list(audio.numpy())) == index).mean())
    return {"test_accuracy": float(np.mean(list(per_domain.values()))), "per_domain_accuracy": per_domain}


TRUSTED_JUDGE = 0.95  # test accuracy on real audio below which a judge's verdicts are flagged


def load_judge(path: Path, device: str | torch.device = "cpu") -> tuple[Judge, dict]:
    state = load_checkpoint(path, device)
    if state.get("kind") != "umt-judge":
        raise UserError(f"{path}: not a judge (train one with `umt judge train`)")
    judge = Judge(JudgeConfig(**state["config"])).to(device)
    judge.load_state_dict(state["model"])
    return judge.eval(), state

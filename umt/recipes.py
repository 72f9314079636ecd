"""The two recipes a model trains by, as objects: what each trains on and how a loader batch
becomes what UMT.forward takes. The loss terms of both are umt.losses'.

  wavenet  (the paper): waveform crops as 8-bit mu-law codes, {"inputs": augmented, "targets":
           clean}; the WaveNet decoders reconstruct the targets.
  spectral (docs/spectral-recipe.md): frame crops of the semitone spectrum ({"levels_in":
           augmented, "levels": clean}, --batch-size of --crop samples) for the encoder and the
           frame networks, and render crops ({"audio", "render_levels", "amplitude", "phase"},
           --render-batch-size of --render-crop samples) for the renderers; either part may
           be left out of a run (a batch size of 0).
Every item and batch is a dict of tensors; a training batch is [D, B, ...], row d of domain d.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from umt.config import ModelConfig
from umt.data.crops import CropDataset
from umt.data.manifest import Manifest
from umt.data.spectra import SpectralCrops, SpectrumStore
from umt.errors import UserError
from umt.model import UMT


@dataclass(frozen=True)
class Crops:
    """What a run crops: lengths in samples, crops per domain per process (0: that part does not
    train), and the augmentation's seed and timbre envelope (dB; spectral)."""

    crop: int
    batch_size: int = 1
    render_crop: int = 0
    render_batch_size: int = 0
    seed: int = 0
    timbre_augment: float = 0.0


class Recipe:
    """What a recipe's training reads: its datasets, batches and the parts of a batch."""

    name: str
    # batch keys a decoder is conditioned on besides its excitation (validation's conditioning gain)
    conditioning: tuple[str, ...]
    # batch keys of the render crops, taken --render-batch-size at a time (the others --batch-size)
    render_keys: tuple[str, ...] = ()
    tensorboard_audio = False  # whether validation clips of teacher-forced audio go to TensorBoard
    loader_workers = True  # whether items come from DataLoader worker processes (the pitch augmentation)

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg

    def longest(self, crops: Crops) -> int:
        """Samples a file must hold to give a crop."""
        return crops.crop

    def dataset(self, model: UMT, manifest: Manifest, domain: str, split: str, crops: Crops) -> Dataset:
        raise NotImplementedError

    def check(self, crops: Crops) -> None:
        """Refuse crop settings this recipe cannot train with."""
        _check_crop(self.cfg, crops.crop, "--crop")
        if crops.batch_size <= 0:
            raise UserError(f"--batch-size {crops.batch_size}: must be positive")

    def loader_batch(self, crops: Crops) -> int:
        """Items a loader draws per step (each cut to its part's batch size by `batch`)."""
        return crops.batch_size

    def samples_per_step(self, crops: Crops, domains: int) -> int:
        """Audio samples one process trains on per step."""
        return domains * crops.batch_size * crops.crop

    def datasets(
        self, model: UMT, manifest: Manifest, domains: list[str], split: str, crops: Crops
    ) -> dict[str, Dataset]:
        """Per domain with a long enough file in `split`: its crops (augmented on the train split,
        where every domain must have one)."""
        sets: dict[str, Dataset] = {}
        longest = self.longest(crops)
        for domain in domains:
            if not any(e.samples >= longest for e in manifest.entries(domain, split)):
                if split == "train":
                    raise UserError(
                        f"domain {domain!r}: no train file of at least {longest} samples in {manifest.root}"
                    )
                continue
            sets[domain] = self.dataset(model, manifest, domain, split, crops)
        return sets

    def batch(self, items: dict[str, torch.Tensor], crops: Crops, device: torch.device) -> dict[str, torch.Tensor]:
        """A loader batch ([B, D, ...] per key) -> UMT.forward's [D, B, ...] on the device, only
        the parts that train: --batch-size rows of the crops, --render-batch-size of render crops."""
        out = {}
        for key, value in items.items():
            rows = crops.render_batch_size if key in self.render_keys else crops.batch_size
            if rows > 0:
                out[key] = value[:rows].transpose(0, 1).to(device, non_blocking=True)
        return out


class WaveNetRecipe(Recipe):
    name = "wavenet"
    conditioning = ("inputs",)
    tensorboard_audio = True

    def dataset(self, model: UMT, manifest: Manifest, domain: str, split: str, crops: Crops) -> Dataset:
        return CropDataset(manifest, domain, split, crops.crop, augment=split == "train", seed=crops.seed)


class SpectralRecipe(Recipe):
    name = "spectral"
    conditioning = ("levels_in", "render_levels")
    render_keys = ("audio", "render_levels", "amplitude", "phase")
    loader_workers = False  # items are slices of tensors in memory

    def longest(self, crops: Crops) -> int:
        return max(crops.crop, crops.render_crop)

    def dataset(self, model: UMT, manifest: Manifest, domain: str, split: str, crops: Crops) -> Dataset:
        store = SpectrumStore(manifest, domain, split, model.spectrum)
        hop = self.cfg.pool
        return SpectralCrops(store, domain, crops.crop // hop, crops.render_crop // hop, split == "train", crops.seed,
                             crops.timbre_augment)  # fmt: skip

    def check(self, crops: Crops) -> None:
        _check_crop(self.cfg, crops.crop, "--crop")
        _check_crop(self.cfg, crops.render_crop, "--render-crop")
        if min(crops.batch_size, crops.render_batch_size) < 0:
            raise UserError("--batch-size and --render-batch-size must not be negative")
        if crops.batch_size <= 0 and crops.render_batch_size <= 0:
            raise UserError("--batch-size and --render-batch-size are both 0: nothing would train")

    def loader_batch(self, crops: Crops) -> int:
        return max(crops.batch_size, crops.render_batch_size)

    def samples_per_step(self, crops: Crops, domains: int) -> int:
        return domains * (crops.batch_size * crops.crop + crops.render_batch_size * crops.render_crop)


def recipe(cfg: ModelConfig) -> Recipe:
    """The recipe a model trains by: its decoder type's."""
    return SpectralRecipe(cfg) if cfg.spectral else WaveNetRecipe(cfg)


def _check_crop(cfg: ModelConfig, crop: int, flag: str) -> None:
    """A crop (samples) must be whole latent frames."""
    if crop % cfg.pool or crop <= 0:
        raise UserError(f"{flag} {crop}: must be a positive multiple of the latent frame ({cfg.pool} samples)")

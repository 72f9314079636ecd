"""The training data: crops of each domain of a prepared dataset, and a loader batch turned
into what UMT.forward takes."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from umt.data.crops import CropDataset
from umt.data.manifest import Manifest
from umt.data.spectra import SpectralCrops, SpectrumStore
from umt.errors import UserError
from umt.model import UMT
from umt.training.config import TrainConfig


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


RENDER_KEYS = ("audio", "render_levels", "amplitude", "phase")


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

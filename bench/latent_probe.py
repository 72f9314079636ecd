#!/usr/bin/env python3
"""How much pitch a model's latent carries: a ridge probe from latent frames to chroma.

    python bench/latent_probe.py PREP MODEL [MODEL ...] [--clips 16]

For each model, encodes --clips files of the train and of the val split of every domain,
computes the chroma of each latent frame (the semitone spectrum at the latent's frame rate,
folded into 12 pitch classes and normalised per frame) and fits a ridge regression
(scikit-learn) from latent frames to chroma on train. Prints R^2 on train and on val: near 0
means the latent holds no pitch a linear read-out can find; 1 is perfect.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from umt.audio import mu_law_encode
from umt.checkpoint import load_model
from umt.data.manifest import Manifest
from umt.spectral import SemitoneSpectrum


def frames_and_chroma(model, manifest: Manifest, split: str, clips: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    cfg = model.cfg
    spectrum = SemitoneSpectrum(cfg.sample_rate, cfg.pool, 24, 96)
    samples = int(seconds * cfg.sample_rate) // cfg.pool * cfg.pool
    xs, ys = [], []
    for domain in cfg.domains:
        for entry in [e for e in manifest.entries(domain, split) if e.samples >= samples][:clips]:
            audio = torch.from_numpy(manifest.excerpt(entry, (entry.samples - samples) // 2, samples))[None]
            with torch.no_grad():
                latent = model.encode(mu_law_encode(audio))[0]
                amp = spectrum(audio)[0][0]
            n = min(latent.shape[0], amp.shape[0])
            chroma = amp[:n].view(n, 8, 12).sum(1)
            chroma = chroma / chroma.amax(1, keepdim=True).clamp_min(1e-6)
            xs.append(latent[:n].numpy())
            ys.append(chroma.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prep", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--clips", type=int, default=16, help="files per domain and split")
    parser.add_argument("--seconds", type=float, default=8.0, help="excerpt of each file")
    args = parser.parse_args()
    from sklearn.linear_model import Ridge

    manifest = Manifest.read(args.prep)
    for path in args.models:
        model = load_model(path)
        x_train, y_train = frames_and_chroma(model, manifest, "train", args.clips, args.seconds)
        x_val, y_val = frames_and_chroma(model, manifest, "val", args.clips, args.seconds)
        probe = Ridge(alpha=1.0).fit(x_train, y_train)
        print(f"{path}: latent {model.cfg.latent_channels} x {model.cfg.sample_rate / model.cfg.pool:g} Hz, "
              f"{len(x_train)} train / {len(x_val)} val frames: chroma R^2 train {probe.score(x_train, y_train):.3f}, "
              f"val {probe.score(x_val, y_val):.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

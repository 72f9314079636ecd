#!/usr/bin/env python3
"""What a model's latent carries: pitch (a ridge probe to chroma) and, on a paired corpus, the instrument.

    python bench/latent_probe.py PREP MODEL [MODEL ...] [--clips 16] [--paired-clips 6]

Pitch: for each model, encodes --clips files of the train and of the val split of every domain,
computes the chroma of each latent frame (the semitone spectrum at the latent's frame rate,
folded into 12 pitch classes and normalised per frame) and fits a ridge regression
(scikit-learn) from latent frames to chroma on train. Prints R^2 on train and on val: near 0
means the latent holds no pitch a linear read-out can find; 1 is perfect.

Instrument (paired corpora of `umt make-bench` only): takes --paired-clips test excerpts of the
first domain's pieces and their renderings in every other domain (the same notes and timing)
and prints the mean L1 distance per latent value between the same music in two domains (what
a domain-free latent makes 0) and between two pieces in one domain (the latent's spread over
music), and their ratio: near 1, the latent says as much about the instrument as about the
notes; near 0, it has kept the notes and dropped the instrument.
"""

from __future__ import annotations

import argparse
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from umt.audio import mu_law_encode
from umt.checkpoint import load_model
from umt.data.manifest import Manifest
from umt.evaluate import choose_clips, paired_clip
from umt.spectral import SemitoneSpectrum
from umt.translator import Translator


def frames_and_chroma(
    model, manifest: Manifest, split: str, clips: int, seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    cfg = model.cfg
    spectrum = SemitoneSpectrum(cfg.sample_rate, cfg.pool, 24, 96)
    samples = int(seconds * cfg.sample_rate) // cfg.pool * cfg.pool
    xs, ys = [], []
    for domain in cfg.domains:
        for entry in [e for e in manifest.entries(domain, split) if e.samples >= samples][:clips]:
            audio = torch.from_numpy(manifest.excerpt(entry, (entry.samples - samples) // 2, samples))[None]
            with torch.no_grad():
                latent = model.encode(mu_law_encode(audio))[0].repeat_interleave(
                    cfg.latent_stride, dim=0
                )  # at the frame rate
                amp = spectrum(audio)[0][0]
            n = min(latent.shape[0], amp.shape[0])
            chroma = amp[:n].view(n, 8, 12).sum(1)
            chroma = chroma / chroma.amax(1, keepdim=True).clamp_min(1e-6)
            xs.append(latent[:n].numpy())
            ys.append(chroma.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def instrument_distances(model, manifest: Manifest, clips: int, seconds: float) -> tuple[float, float]:
    """(mean latent L1 between the same music in two domains, between two pieces in one domain)."""
    translator = Translator(model, torch.device("cpu"))
    domains = [d for d in model.cfg.domains if d in manifest.domains]
    samples = int(seconds * manifest.sample_rate)
    pieces = choose_clips(manifest, domains[0], clips, samples)
    latents = {(d, i): translator.encode(paired_clip(manifest, clip, d, samples).audio).numpy()
               for i, clip in enumerate(pieces) for d in domains}  # fmt: skip
    same_music = [
        np.abs(latents[a, i] - latents[b, i]).mean() for i in range(len(pieces)) for a, b in combinations(domains, 2)
    ]
    same_domain = [
        np.abs(latents[d, i] - latents[d, j]).mean() for d in domains for i, j in combinations(range(len(pieces)), 2)
    ]
    return float(np.mean(same_music)), float(np.mean(same_domain))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prep", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--clips", type=int, default=16, help="files per domain and split")
    parser.add_argument("--seconds", type=float, default=8.0, help="excerpt of each file")
    parser.add_argument(
        "--paired-clips", type=int, default=6, help="test pieces for the instrument measure (0: skip it)"
    )
    args = parser.parse_args()
    from sklearn.linear_model import Ridge

    manifest = Manifest.read(args.prep)
    for path in args.models:
        model = load_model(path)
        x_train, y_train = frames_and_chroma(model, manifest, "train", args.clips, args.seconds)
        x_val, y_val = frames_and_chroma(model, manifest, "val", args.clips, args.seconds)
        probe = Ridge(alpha=1.0).fit(x_train, y_train)
        print(f"{path}: latent {model.cfg.latent_channels} x {model.cfg.sample_rate / model.cfg.latent_hop:g} Hz, "
              f"{len(x_train)} train / {len(x_val)} val frames: chroma R^2 train {probe.score(x_train, y_train):.3f}, "
              f"val {probe.score(x_val, y_val):.3f}", flush=True)  # fmt: skip
        if manifest.paired and args.paired_clips:
            with torch.no_grad():
                music, pieces = instrument_distances(model, manifest, args.paired_clips, 4.0)
            print(f"{path}: latent L1, same music in two domains {music:.3f}; two pieces in one domain {pieces:.3f}; "
                  f"ratio {music / pieces:.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Choose each domain's sampling (WaveNet temperature, flutter) on the val split.

    python bench/sampling_sweep.py MODEL PREP --judge JUDGE --temperature 0 0.2 0.4 --flutter 0.5 1 --out sampling.json

For every target domain and every (temperature, flutter) of the grid, translates --clips val
clips of each other domain into it (WaveNet renderer) and scores them as `umt evaluate` does
(umt.evaluate.Scorer): the judge, the noise floor's excess over the target's real val audio,
LSD and MR-STFT to the paired truth, chroma and note onset F1. Prints one line per setting and
writes the choice per domain to --out, for `umt export --sampling`: among the settings whose
noise floor is within --noise-db of the real audio's (none: the closest), the one the judge
accepts most often (ties: the lower MR-STFT distance). The noise floor comes first because the
judge does not fall on noise (docs/sound.md, section 1): it hears the WaveNet's hiss as organ.
The test split is not touched.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from umt import measures
from umt.checkpoint import find_checkpoint, load_model
from umt.data.manifest import Manifest
from umt.evaluate import Scorer, choose_clips, paired_clip
from umt.fileio import write_json
from umt.judge import load_judge
from umt.translator import Sampling, Translator

MEASURES = ("target_accuracy", "noise_floor_excess_db", "lsd", "mr_stft", "chroma_similarity", "onset_f1")


def choose(rows: list[tuple[Sampling, dict]], noise_db: float) -> tuple[Sampling, dict]:
    """The setting of the module docstring's rule among (sampling, scores) rows."""
    excess = lambda row: abs(row["noise_floor_excess_db"])
    eligible = [e for e in rows if excess(e[1]) <= noise_db] or [min(rows, key=lambda e: excess(e[1]))]
    return min(eligible, key=lambda e: (-e[1]["target_accuracy"], e[1]["mr_stft"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("prep", type=Path, help="a paired corpus (umt make-bench, prepared)")
    parser.add_argument("--judge", type=Path, required=True)
    parser.add_argument("--temperature", type=float, nargs="+", default=[0.0, 0.2, 0.4])
    parser.add_argument("--flutter", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--clips", type=int, default=3, help="val clips per source domain (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--noise-db", type=float, default=6.0, help="the noise floor's tolerance (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, required=True, help="the chosen sampling, JSON")
    args = parser.parse_args()

    model = load_model(args.model)
    judge, _ = load_judge(find_checkpoint(args.judge))
    manifest = Manifest.read(args.prep)
    rate, samples = manifest.sample_rate, int(args.seconds * manifest.sample_rate)
    domains = model.cfg.domains
    clips = {d: choose_clips(manifest, d, args.clips, samples, split="val") for d in domains}
    real_floor = {d: float(np.mean([measures.noise_floor_db(c.audio) for c in clips[d]])) for d in domains}
    scorer = Scorer(rate, judge, manifest.paired, real_floor)
    encoder = Translator(model, torch.device("cpu"))
    latents = {d: [encoder.encode(c.audio) for c in clips[d]] for d in domains}
    print(f"{args.clips} val clips of {args.seconds:g} s per source; real val noise floors (dB): "
          + ", ".join(f"{d} {v:.1f}" for d, v in real_floor.items()))  # fmt: skip
    print(f"{'target':<8} {'T':>4} {'flutter':>7}  " + "  ".join(f"{m[:12]:>12}" for m in MEASURES), flush=True)
    chosen = {}
    for target in domains:
        rows = []
        for temperature, flutter in itertools.product(args.temperature, args.flutter):
            translator = Translator(model, torch.device("cpu"), temperature=temperature, flutter=flutter)
            audio, refs = [], []
            for source in (d for d in domains if d != target):
                keys = [c.entry.source for c in clips[source]]
                audio += translator.decode(latents[source], [samples] * len(keys), target, keys)
                refs += [paired_clip(manifest, c, target, samples) for c in clips[source]]
            row = scorer.score(audio, refs, target)
            rows.append((Sampling(temperature, flutter), row))
            print(
                f"{target:<8} {temperature:>4g} {flutter:>7g}  " + "  ".join(f"{row[m]:>12.3f}" for m in MEASURES),
                flush=True,
            )
        sampling, row = choose(rows, args.noise_db)
        chosen[target] = asdict(sampling)
        print(f"{target}: temperature {sampling.temperature:g}, flutter {sampling.flutter:g} (judge {row['target_accuracy']:.2f}, "
              f"noise floor {row['noise_floor_excess_db']:+.1f} dB)", flush=True)  # fmt: skip
    write_json(args.out, chosen)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

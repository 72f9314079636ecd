#!/usr/bin/env python3
"""Where does a judge stop hearing the instrument? Real test audio under worse and worse noise.

    python bench/judge_hiss.py PREP JUDGE [JUDGE ...] [--clips 6] [--seconds 4]

For each judge, the share of real test clips of each domain (the clips `umt evaluate` scores,
umt.evaluate.choose_clips) it hears as their domain: clean, with white noise 60 to 30 dB below
their RMS, and through 8-bit and 10-bit mu-law (noise shaped by the signal, which no hiss class
trains on). Beside each row, the mean noise floor's excess over the clean clips (umt.measures),
so that a judge's verdict reads against the measure the issue's 6 dB tolerance is stated in.
A judge that hears hiss (umt judge train --hiss-db) should stay right on the clean audio and
turn away as the excess grows past that tolerance; an instrument judge alone does not turn.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from umt import measures
from umt.audio import mu_law_decode, mu_law_encode
from umt.checkpoint import find_checkpoint
from umt.data.manifest import Manifest
from umt.evaluate import choose_clips
from umt.judge import load_judge


def degradations(audio: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The clip, clean and made worse, by name."""
    coded = lambda bits: mu_law_decode(mu_law_encode(torch.from_numpy(audio), bits), bits).numpy()
    worse = {"clean": audio}
    worse |= {f"white noise {db} dB": measures.add_noise(audio, db, seed) for db in (-60, -50, -45, -40, -30)}
    return worse | {"10-bit mu-law": coded(10), "8-bit mu-law": coded(8)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prep", type=Path, help="a prepared corpus (its test split)")
    parser.add_argument("judges", type=Path, nargs="+", metavar="JUDGE")
    parser.add_argument("--clips", type=int, default=6, help="test clips per domain (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()

    manifest = Manifest.read(args.prep)
    judges = {str(path): load_judge(find_checkpoint(path))[0] for path in args.judges}
    samples = int(args.seconds * manifest.sample_rate)
    rows: dict[str, dict] = {}
    for domain in manifest.domains:
        for i, clip in enumerate(choose_clips(manifest, domain, args.clips, samples)):
            clean_floor = measures.noise_floor_db(clip.audio)
            for name, audio in degradations(clip.audio, seed=i).items():
                row = rows.setdefault(name, {"excess": [], **{j: {} for j in judges}})
                floor = measures.noise_floor_db(audio)
                if floor is not None and clean_floor is not None:
                    row["excess"].append(floor - clean_floor)
                for path, judge in judges.items():
                    heard = judge.classify([audio])[0] == judge.cfg.classes.index(domain)
                    row[path].setdefault(domain, []).append(float(heard))
    names = list(judges)
    print(f"{args.clips} test clips of {args.seconds:g} s per domain of {args.prep}; share heard as their domain")
    for i, path in enumerate(names):
        print(f"  judge {i + 1}: {path} (classes: {', '.join(judges[path].cfg.classes)})")
    domains = manifest.domains
    print(
        f"{'audio':<20} {'excess dB':>9}  "
        + "  ".join(f"judge {i + 1}: mean ({' / '.join(domains)})" for i in range(len(names)))
    )
    for name, row in rows.items():
        cells = []
        for path in names:
            per_domain = [np.mean(row[path][d]) for d in domains]
            cells.append(f"{np.mean(per_domain):.2f} (" + " / ".join(f"{v:.2f}" for v in per_domain) + ")")
        print(f"{name:<20} {np.mean(row['excess']):>+9.1f}  " + "  ".join(cells))


if __name__ == "__main__":
    main()

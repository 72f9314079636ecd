#!/usr/bin/env python3
"""The README example, heard by measurement: translate the shipped example with the main job's
command and say what the judge hears in each output and how high its noise floor lies.

    python bench/example_check.py --judge JUDGE [--model MODEL ...]

For each model (default: the shipped one), runs `umt translate umt/assets/example.flac` into
every domain, then prints per domain the judge's verdict (umt judge train), the noise floor
(umt.measures.noise_floor_db: the 20th-percentile STFT bin below each frame's strongest, median
over frames) and the output's peak. The figures of README, "The default model".
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from umt import measures
from umt.audio import load_audio
from umt.checkpoint import find_checkpoint
from umt.judge import load_judge

EXAMPLE = Path(__file__).resolve().parent.parent / "umt" / "assets" / "example.flac"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge", type=Path, required=True)
    parser.add_argument("--model", type=Path, action="append", help="(repeatable; default: the shipped model)")
    args = parser.parse_args()

    judge, _ = load_judge(find_checkpoint(args.judge))
    rate = judge.cfg.sample_rate
    for model in args.model or [None]:
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-m", "umt", "translate", str(EXAMPLE), "-o", tmp]
            subprocess.run(command + (["--model", str(model)] if model else []), check=True, capture_output=True)
            print(f"{model or 'the shipped model'}:")
            for path in sorted(Path(tmp).glob("*/*.wav")):
                audio = load_audio(path, rate)
                heard = judge.cfg.classes[judge.classify([audio])[0]]
                floor = measures.noise_floor_db(audio)
                print(f"  {path.parent.name:<8} heard as {heard:<8} noise floor {floor:6.1f} dB, "
                      f"peak {np.abs(audio).max():.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

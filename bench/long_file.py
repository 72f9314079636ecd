#!/usr/bin/env python3
"""Peak memory and speed of translating one long recording end to end (`umt translate`).

    python bench/long_file.py --preset small --minutes 10
    python bench/long_file.py --preset spectral --minutes 0.5 --to 1   # 30 s into one domain
    python bench/long_file.py --model umt/assets/default.pt --minutes 1 10 30 60 --renderer sines   # memory vs length
    python bench/long_file.py --model umt/assets/default.pt --model OTHER.pt --minutes 0.5   # trained models, one run

Builds an untrained model of the preset (speed and memory do not depend on the weights), or
takes trained models (--model, repeatable: compared in one run, so their ratio holds on a
machine whose speed varies from day to day), writes a test recording of the given length (a
chord with vibrato), translates it into the first domain with the real command and prints wall
time, real-time factor and peak resident memory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from umt.checkpoint import load_model, save_checkpoint
from umt.model import UMT
from umt.presets import preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--model", type=Path, action="append", default=[], help="a trained model instead (repeatable)")
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0], help="one run per length")
    parser.add_argument("--renderer", choices=["wavenet", "sines"], default="wavenet")
    parser.add_argument("--batch-size", type=int, help="chunks decoded at once (default: translate's own choice)")
    parser.add_argument("--to", type=int, default=1, help="target domains (default: %(default)s)")
    args = parser.parse_args()

    what = ", ".join(map(str, args.model)) or f"preset {args.preset}"
    print(f"{what}, renderer {args.renderer}, into {args.to} domain(s), batch {args.batch_size or 'automatic'}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    for minutes in args.minutes:
        for model in args.model or [None]:
            run(args, minutes, model)


def run(args: argparse.Namespace, minutes: float, model: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if model is None:
            cfg = preset(args.preset, [f"target{i}" for i in range(args.to)])
            model = root / "model.pt"
            save_checkpoint(model, {"config": cfg.to_dict(), "model": UMT(cfg).state_dict()})
        cfg = load_model(model).cfg
        t = np.arange(int(minutes * 60 * cfg.sample_rate)) / cfg.sample_rate
        audio = sum(0.2 * np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 5 * t)) for f in (220, 277, 330))
        sf.write(root / "long.flac", audio.astype(np.float32), cfg.sample_rate)
        del t, audio
        command = [sys.executable, "-m", "umt", "translate", "--model", str(model), str(root / "long.flac"),
                   "-o", str(root / "out"), "--renderer", args.renderer, "--to", ",".join(cfg.domains[: args.to])]  # fmt: skip
        if args.batch_size:
            command += ["--batch-size", str(args.batch_size)]
        start = time.perf_counter()
        # each run in its own process, measured by a wrapper that reports that process's own peak
        probe = (
            "import resource, subprocess, sys; "
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        peak_kb = int(
            subprocess.run([sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True).stdout
        )
        seconds = time.perf_counter() - start
        out = sf.info(root / "out" / cfg.domains[0] / "long.wav")
    name = model.name if args.model else args.preset
    print(
        f"{name}, {minutes:g} min: output {out.duration:.2f} s; wall {seconds:.1f} s = {minutes * 60 / seconds:.2f}x "
        f"real time; peak_rss_mb={peak_kb / 1024:.0f}",
        flush=True,
    )


if __name__ == "__main__":
    main()

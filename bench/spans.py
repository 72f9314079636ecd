#!/usr/bin/env python3
"""Rendering a recording span by span (what `umt translate` does, in bounded memory) against
rendering it as one span: prints the largest difference, which should be float rounding.

    python bench/spans.py --model umt/assets/default.pt --seconds 30 --span-seconds 8

Both translators decode the same batches (--batch-size chunks of --chunk-seconds), so a sampled
value cannot flip with the rounding of another batch shape; only the cuts between spans differ.
The test recording is the chord with vibrato of bench/long_file.py; --input takes a file instead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from umt.audio import load_audio
from umt.checkpoint import load_model
from umt.translator import RENDERERS, Translator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--input", type=Path, help="a recording (default: a synthetic chord with vibrato)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--span-seconds", type=float, default=8.0, help="span length of the span-by-span run")
    parser.add_argument("--chunk-seconds", type=float, default=0.5)
    parser.add_argument("--renderer", choices=RENDERERS, action="append", help="(repeatable; default: both)")
    parser.add_argument("--to", help="target domain (default: the model's first)")
    args = parser.parse_args()

    model = load_model(args.model)
    cfg = model.cfg
    if args.input:
        audio = load_audio(args.input, cfg.sample_rate)[: int(args.seconds * cfg.sample_rate)]
    else:
        t = np.arange(int(args.seconds * cfg.sample_rate)) / cfg.sample_rate
        audio = sum(0.2 * np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 5 * t)) for f in (220, 277, 330))
        audio = audio.astype(np.float32)
    domain = args.to or cfg.domains[0]
    chunk_frames = max(1, round(args.chunk_seconds * cfg.sample_rate / cfg.pool))
    batch = max(1, round(args.span_seconds * cfg.sample_rate / cfg.pool / chunk_frames))
    for renderer in args.renderer or [r for r in RENDERERS if cfg.spectral or r == "wavenet"]:
        spanned, whole = (
            Translator(
                model, torch.device("cpu"), batch_size=batch, chunk_seconds=args.chunk_seconds, renderer=renderer
            )
            for _ in range(2)
        )
        whole.span_frames = 1 << 40
        outputs = []
        for translator in (whole, spanned):
            start = time.perf_counter()
            outputs.append(translator.decode([translator.encode(audio)], [audio.size], domain, ["bench"])[0])
            spans = len(translator.spans(audio.size))
            print(f"{renderer}: {spans} span(s) in {time.perf_counter() - start:.1f} s", flush=True)
        difference = np.abs(outputs[0] - outputs[1])
        print(
            f"{renderer}, {args.seconds:g} s into {domain}: largest difference {difference.max():.2e}, "
            f"samples differing by more than 1e-5: {(difference > 1e-5).sum()} of {audio.size}; "
            f"output RMS {np.sqrt(np.mean(outputs[0] ** 2)):.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

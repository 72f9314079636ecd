#!/usr/bin/env python3
"""Generation speed of the token LM, parallel against joint, with and without the key-value
cache: frames of tokens per second.

    python bench/token_lm.py MODEL [--lm PATH ...] [--frames 200] [--repeats 3] [--prompt FILE]

MODEL carries its LMs (`umt export --lm`); --lm adds LM runs or checkpoints (e.g. of another
size) to time in the same run. Each LM continues the tokens of the prompt (the
shipped example by default) by --frames frames, --repeats times with different seeds, on the
CPU threads torch is given; prints min / median / max frames per second per mode, with the
cache and without it (every step running the whole window), and the ratios, all measured in one
run. A parallel LM takes one step a frame (K codebooks at once); a joint one K steps a frame.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from umt.audio import load_audio
from umt.checkpoint import EXAMPLE_CLIP, load_lm_state, load_model, load_model_state
from umt.tokens import load_lm
from umt.translator import Translator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--lm", type=Path, action="append", default=[], help="an LM run or checkpoint (repeatable)")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt", type=Path, default=EXAMPLE_CLIP)
    args = parser.parse_args()

    device = torch.device("cpu")
    model = load_model(args.model, device)
    translator = Translator(model, device, tokens=True)
    prompt = translator.tokenize(load_audio(args.prompt, model.cfg.sample_rate))
    lms = {mode: load_lm(state) for mode, state in (load_model_state(args.model).get("lm") or {}).items()}
    lms.update({str(path): load_lm(load_lm_state(path)) for path in args.lm})
    if not lms:
        raise SystemExit(f"{args.model} carries no token LM (umt export --lm) and no --lm was given")
    print(f"{torch.get_num_threads()} threads; prompt {prompt.shape[0]} frames of {prompt.shape[1]} codebooks; "
          f"{args.frames} frames generated, {args.repeats} repeats")  # fmt: skip
    rates = {}
    for mode, lm in lms.items():
        for cache in (True, False):
            times = []
            for seed in range(args.repeats):
                tic = time.perf_counter()
                lm.continuation(prompt, args.frames, 1.0, torch.Generator().manual_seed(seed), cache=cache)
                times.append(time.perf_counter() - tic)
            per_s = sorted(args.frames / t for t in times)
            rates[mode, cache] = statistics.median(per_s)
            print(f"{mode:9s} ({lm.cfg.mode}) {'cache   ' if cache else 'no cache'} frames/s min {per_s[0]:.0f}  "
                  f"median {rates[mode, cache]:.0f}  max {per_s[-1]:.0f}  "
                  f"({lm.cfg.layers} layers, dim {lm.cfg.dim}, context {lm.cfg.context} frames)")  # fmt: skip
        print(f"{mode:9s} cache / no cache: {rates[mode, True] / rates[mode, False]:.1f}x")
    if {"parallel", "joint"} <= {mode for mode, _ in rates}:
        print(f"parallel / joint, with the cache: {rates['parallel', True] / rates['joint', True]:.1f}x")


if __name__ == "__main__":
    main()

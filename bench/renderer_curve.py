#!/usr/bin/env python3
"""How well a spectral model's WaveNet renderers play, given the best conditioning a translator
could hand them: the real semitone spectrum of val clips of their own domain (an oracle).

    python bench/renderer_curve.py PREP RUN/step500.pt RUN/step1000.pt ... --domains piano --judge JUDGE

For each checkpoint and domain, renders --clips val clips of --seconds free-running (sampled
sample by sample at each --temperature, excitation with free-running phases from the clip's
spectral peaks, as at inference) and prints one line: the training step, chroma similarity and
pyin pitch-class agreement with the clip (and with an unrelated clip of the same domain: the
floor), the noise floor's excess over the clip's own (dB), the log-spectral and multi-resolution
STFT distances to the clip (umt.measures), and the judge's accuracy. The same scores for the
excitation alone (the 'sines' renderer) come first. `train --keep-every` keeps the checkpoints.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from umt import spectral
from umt.checkpoint import load_checkpoint, load_model
from umt.data.manifest import Manifest
from umt.evaluate import choose_clips
from umt.judge import load_judge
from umt.measures import chroma_similarity, lsd, mr_stft_distance, noise_floor_db, pitch_class_agreement, pitch_classes
from umt.sampler import PackedDecoder, generate


def oracle_inputs(model, audio: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Levels [B, F, bins] and free-phase excitation [B, F * pool, E] of clips [B, F * pool]."""
    cfg = model.cfg
    with torch.no_grad():
        amp, _ = model.spectrum(torch.from_numpy(audio))
        phase = spectral.free_phases(amp.shape[1], amp.shape[0], model.freqs, cfg.pool, cfg.sample_rate,
                                     torch.Generator().manual_seed(seed))  # fmt: skip
        excitation = model.excitation(spectral.peaks(amp), phase)
    return spectral.level(amp[:, :-1]), excitation


def scores(rendered: np.ndarray, clips: np.ndarray, rate: int, judge, index: int, tracks: list) -> dict[str, float]:
    unrelated = np.roll(np.arange(len(clips)), 1)
    mine = [pitch_classes(r, rate) for r in rendered]
    out = {
        "chroma": np.mean([chroma_similarity(r, c, rate) for r, c in zip(rendered, clips)]),
        "chroma_floor": np.mean([chroma_similarity(r, clips[j], rate) for r, j in zip(rendered, unrelated)]),
        "pitch": np.mean([pitch_class_agreement(m, t) or 0.0 for m, t in zip(mine, tracks)]),
        "pitch_floor": np.mean([pitch_class_agreement(m, tracks[j]) or 0.0 for m, j in zip(mine, unrelated)]),
        "floor_excess": np.mean([noise_floor_db(r) - noise_floor_db(c) for r, c in zip(rendered, clips)]),
        "lsd": np.mean([lsd(r, c, rate) for r, c in zip(rendered, clips)]),
        "mr_stft": np.mean([mr_stft_distance(r, c) for r, c in zip(rendered, clips)]),
    }
    if judge is not None:
        out["judge"] = float(np.mean(judge.classify(list(rendered)) == index))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prep", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--domains", help="comma-separated (default: all of the model's)")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0], help="one or more (default: 1)")
    parser.add_argument("--judge", type=Path, help="judge.pt for target accuracy")
    args = parser.parse_args()
    manifest = Manifest.read(args.prep)
    rate = manifest.sample_rate
    judge = load_judge(args.judge)[0] if args.judge else None
    first = load_model(args.checkpoints[0])
    domains = args.domains.split(",") if args.domains else first.cfg.domains
    samples = int(args.seconds * rate) // first.cfg.pool * first.cfg.pool
    clips = {
        d: np.stack([c.audio for c in choose_clips(manifest, d, args.clips, samples, split="val")]) for d in domains
    }
    tracks = {d: [pitch_classes(c, rate) for c in clips[d]] for d in domains}
    print(f"{args.clips} val clips of {samples / rate:g} s per domain; (floor) = against an unrelated clip of the same domain; "
          "noise = the noise floor's excess over the clip's own, dB")  # fmt: skip
    print("step  domain   renderer  T     chroma (floor)  pitch-class (floor)  noise   LSD    MR-STFT  judge  render s")
    for n, path in enumerate(args.checkpoints):
        model = load_model(path)
        step = load_checkpoint(path).get("step")
        for d in domains:
            index = judge.cfg.domains.index(d) if judge else -1
            levels, excitation = oracle_inputs(model, clips[d], seed=0)
            rows = []
            if n == 0:
                rows.append(("sines", "-", excitation.sum(-1).clamp(-1, 1).numpy(), 0.0))
            packed = PackedDecoder(model.decoders[d].renderer, model.cfg.pool)
            for temperature in args.temperature:
                tic = time.perf_counter()
                codes = generate(packed, levels, temperature, excitation=excitation)
                audio = model.waveform(packed.output.decode(codes), excitation.sum(-1)).numpy()
                rows.append(("wavenet", f"{temperature:g}", audio, time.perf_counter() - tic))
            for name, temperature, rendered, seconds in rows:
                s = scores(rendered, clips[d], rate, judge, index, tracks[d])
                judged = f"{s['judge']:.2f}" if judge else "n/a"
                print(f"{step!s:>5} {d:<8} {name:<9} {temperature:<5} {s['chroma']:.3f} ({s['chroma_floor']:.3f})  "
                      f"{s['pitch']:.3f} ({s['pitch_floor']:.3f})        {s['floor_excess']:5.1f}  {s['lsd']:5.2f}  "
                      f"{s['mr_stft']:.3f}    {judged}   {seconds:.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

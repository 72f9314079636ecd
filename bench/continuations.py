#!/usr/bin/env python3
"""How token-LM continuations sound, by measures that know nothing of the LM, beside the
corpus's own clips of the same length.

    python bench/continuations.py MODEL --data PREP --judge JUDGE [--lm PATH ...] [--prompts 8]
        [--prompt-seconds 2] [--seconds 4] [--to violin] [--renderer wavenet|sines] [--json OUT]

Each LM (by default those MODEL carries, `umt export --lm`) continues the first --prompt-seconds
of --prompts test files (every domain in turn; seed i for prompt i, temperature 1) by --seconds,
rendered in --to, as `umt generate` does. Per continuation: whether the judge hears --to, its
noise floor, and basic-pitch's notes (umt.measures.note_statistics: notes per second,
pitch-class entropy, repetition) over the whole continuation and over its last second (does it
stay music to the end?). The corpus row is the same measures on --to's own test clips. Two
control rows go through the same tokens and rendering as the LMs: "real tokens", each prompt's
file's own next --seconds (what a perfect LM could give: the renderer's share of a figure), and
"random tokens", codes drawn uniformly (what the measures say of a continuation that is no
music: a measure that does not tell it from the corpus says nothing). Prints a table; --json
writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from umt import measures
from umt.checkpoint import load_lm_state, load_model, load_model_state
from umt.data.manifest import Manifest
from umt.judge import load_judge
from umt.tokens import continue_prompt, load_lm, render_continuation
from umt.translator import Translator

FIGURES = ("heard_as_target", "noise_floor_db", "notes_per_second", "pitch_class_entropy", "repetition",
           "last_second_notes_per_second", "last_second_pitch_class_entropy")  # fmt: skip


def describe(audio: np.ndarray, rate: int, judge, target: int) -> dict[str, float | None]:
    """The figures of one clip."""
    seconds = audio.size / rate
    notes = measures.transcribe(audio, rate)
    whole = measures.note_statistics(notes, seconds)
    last = measures.note_statistics(notes[notes[:, 0] >= seconds - 1.0], 1.0)
    return {
        "heard_as_target": float(judge.classify([audio])[0] == target),
        "noise_floor_db": measures.noise_floor_db(audio),
        **whole,
        "last_second_notes_per_second": last["notes_per_second"],
        "last_second_pitch_class_entropy": last["pitch_class_entropy"],
    }


def means(rows: list[dict]) -> dict[str, float | None]:
    found = {k: [r[k] for r in rows if r[k] is not None] for k in FIGURES}
    return {k: statistics.fmean(v) if v else None for k, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="a prepared corpus: prompts and the corpus's clips")
    parser.add_argument("--judge", type=Path, required=True, help="a judge folder or judge.pt (umt judge train)")
    parser.add_argument("--lm", type=Path, action="append", help="an LM run or checkpoint (repeatable)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--prompt-seconds", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--to", default="violin")
    parser.add_argument("--renderer", default="wavenet", choices=["wavenet", "sines"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    device = torch.device("cpu")
    translator = Translator(load_model(args.model, device), device, tokens=True, renderer=args.renderer)
    rate = translator.model.cfg.sample_rate
    judge, _ = load_judge(args.judge / "judge.pt" if args.judge.is_dir() else args.judge)
    target = judge.cfg.classes.index(args.to)
    manifest = Manifest.read(args.data)
    lms = {str(p): load_lm(load_lm_state(p)) for p in args.lm or []}
    if not lms:
        lms = {
            f"carried {mode}": load_lm(state) for mode, state in (load_model_state(args.model).get("lm") or {}).items()
        }
    files = [e for d in translator.model.cfg.domains for e in manifest.entries(d, "test")]
    files = [files[i * len(files) // args.prompts] for i in range(args.prompts)]  # spread over the domains
    span = int(args.seconds * rate)
    results = {}
    real = [e for e in manifest.entries(args.to, "test") if e.samples >= span][: args.prompts]
    results["corpus"] = means([describe(manifest.excerpt(e, 0, span), rate, judge, target) for e in real])
    prompt_span = int(args.prompt_seconds * rate)
    cfg = translator.model.cfg
    frames = max(1, round(args.seconds * rate / cfg.latent_hop))
    margin = 4 * cfg.latent_hop  # tokenized past the cut, so the last frames kept do not hear the edge
    controls: dict[str, list[dict]] = {"real tokens": [], "random tokens": []}
    for i, entry in enumerate(files):
        prompt_codes = translator.tokenize(manifest.excerpt(entry, 0, prompt_span))  # as the LMs' prompts
        longer = translator.tokenize(manifest.excerpt(entry, 0, min(entry.samples, prompt_span + span + margin)))
        following = longer[len(prompt_codes) : len(prompt_codes) + frames]
        if len(following) < frames:
            continue  # a file shorter than prompt and continuation has no real continuation to compare
        noise = torch.randint(
            0, cfg.tokenizer.codebook_size, following.shape, generator=torch.Generator().manual_seed(i)
        )
        for name, continuation in (("real tokens", following), ("random tokens", noise)):
            audio = render_continuation(translator, prompt_codes, continuation, args.to, f"generate:{i}")
            controls[name].append(describe(audio, rate, judge, target))
    results.update({name: means(rows) for name, rows in controls.items() if rows})
    for name, lm in lms.items():
        rows, speed = [], []
        for i, entry in enumerate(files):
            prompt = manifest.excerpt(entry, 0, int(args.prompt_seconds * rate))
            audio, figures = continue_prompt(translator, lm, prompt, args.seconds, args.to, 1.0, seed=i)
            rows.append(describe(audio, rate, judge, target))
            speed.append(figures["frames_per_second"])
        results[name] = {**means(rows), "lm_frames_per_second": statistics.median(speed)}
    print(f"{args.prompts} prompts of {args.prompt_seconds:g} s continued by {args.seconds:g} s into {args.to} "
          f"({args.renderer}); the corpus: {len(real)} test clips of {args.to}")  # fmt: skip
    print("row | " + " | ".join(FIGURES))
    for name, row in results.items():
        print(f"{name} | " + " | ".join("-" if row[k] is None else f"{row[k]:.2f}" for k in FIGURES))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

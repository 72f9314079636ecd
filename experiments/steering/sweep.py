"""Success and price of steering against alpha, monitored and not (docs/steering.md), for one
trait: translation of unseen sources into a target through its frame network, and generation
through the token LM's heads. Runs `umt translate` and `umt generate` as a user would, then
scores their outputs with measures that know nothing of the probes (MEASURES, below).

    python experiments/steering/sweep.py translate|generate --trait T --probe P.pt --unseen DIR --out DIR
        [--model M] [--mode parallel|joint] [--to violin] [--sources flute,piano] [--alphas 2 4 8] [--renderer sines]

--unseen is a trait corpus no probe saw (`umt make-bench --trait T`): its without/ and with/
renderings of each piece give the sources (or prompts) and, through the target, the midpoint
that decides success. Writes OUT/results.json; outputs already there are kept, so a stopped
sweep continues.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import torch

from umt.audio import load_audio, write_audio
from umt.checkpoint import DEFAULT_MODEL, load_model
from umt.measures import chroma_similarity
from umt.runtime import CPU
from umt.tokens import carried_lm, nll_bits
from umt.translator import Translator

# ---------------------------------------------------------------- the traits' measures

FRAME = 160  # 10 ms at 16 kHz
LOW_MIDI, BINS = 24, 84  # the semitone CQT of the register measure: C1 up seven octaves


def _levels_db(audio: np.ndarray) -> np.ndarray:
    rms = librosa.feature.rms(y=audio, frame_length=2 * FRAME, hop_length=FRAME)[0]
    return 20 * np.log10(rms + 1e-9)


def gap_share(audio: np.ndarray, rate: int) -> float:
    """articulation: the share of 10 ms frames more than 25 dB below the clip's loud level
    (its 95th-percentile frame level): the gaps between detached notes."""
    levels = _levels_db(audio)
    return float((levels < np.percentile(levels, 95) - 25).mean())


def mean_midi(audio: np.ndarray, rate: int) -> float:
    """register: the energy-weighted mean MIDI pitch of the semitone CQT (harmonics included)."""
    spectrum = np.abs(librosa.cqt(audio, sr=rate, fmin=librosa.midi_to_hz(LOW_MIDI), n_bins=BINS)) ** 2
    energy = spectrum.sum(axis=1)
    return LOW_MIDI + float((energy * np.arange(BINS)).sum() / max(energy.sum(), 1e-12))


def voices(audio: np.ndarray, rate: int) -> float:
    """density: the mean number of pitch classes at least half as strong as the strongest, over
    the loud frames (within 20 dB of the 95th-percentile level)."""
    chroma = librosa.feature.chroma_cqt(y=audio, sr=rate, hop_length=4 * FRAME)
    levels = _levels_db(audio)[::4][: chroma.shape[1]]
    loud = levels >= np.percentile(levels, 95) - 20
    counts = (chroma[:, : loud.size] >= 0.5 * chroma[:, : loud.size].max(axis=0, keepdims=True)).sum(axis=0)
    return float(counts[loud].mean()) if loud.any() else 0.0


MEASURES = {"articulation": gap_share, "register": mean_midi, "density": voices}


def success(value: float, without: float, with_trait: float) -> bool:
    """Past the midpoint between the target's real renderings of the piece without and with the trait."""
    middle = (without + with_trait) / 2
    return value > middle if with_trait >= without else value < middle


# ---------------------------------------------------------------- the sweep

UMT = [sys.executable, "-m", "umt"]
NUDGED = re.compile(r"the nudge applied at (\d+)%")
SETTINGS_ZERO = "0"  # the unsteered output of every source


def excerpt(src: Path, dst: Path, seconds: float, rate: int) -> None:
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_audio(dst, load_audio(src, rate)[: int(seconds * rate)], rate)


def settings(alphas: list[float]) -> list[tuple[str, float, bool]]:
    """(name, alpha, monitored): unsteered, then each alpha not monitored (ITI) and monitored (SMITIN)."""
    rows = [(SETTINGS_ZERO, 0.0, False)]
    for alpha in alphas:
        rows += [(f"{alpha:g}, not monitored", alpha, False), (f"{alpha:g}, monitored", alpha, True)]
    return rows


def steer_flags(probe: Path, alpha: float, monitored: bool) -> list[str]:
    if alpha == 0:
        return []
    return ["--steer", f"{probe}:{alpha:g}"] + ([] if monitored else ["--no-steer-monitor"])


def run(command: list[str]) -> float | None:
    """Run a umt command; the share it nudged (0..1), if it steered."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    found = NUDGED.search(done.stdout)
    return int(found.group(1)) / 100 if found else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=["translate", "generate"])
    p.add_argument("--trait", required=True, choices=list(MEASURES))
    p.add_argument("--probe", type=Path, required=True)
    p.add_argument("--unseen", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--mode", default="parallel", choices=["parallel", "joint"],
                   help="the model's token LM that generates (and scores every output's NLL)")  # fmt: skip
    p.add_argument("--to", default="violin")
    p.add_argument("--sources", default="flute,piano")
    p.add_argument("--alphas", type=float, nargs="+")
    p.add_argument("--pieces", type=int, default=6, help="pieces per source domain (generation: half as many)")
    p.add_argument("--renderer", default="wavenet", choices=["wavenet", "sines"])
    args = p.parse_args()
    translator = Translator(load_model(args.model), CPU, tokens=True)
    rate = translator.model.cfg.sample_rate
    lm = carried_lm(args.model, args.mode)
    measure = MEASURES[args.trait]
    generate = args.task == "generate"
    alphas = args.alphas or ([4, 8, 16] if generate else [2, 4, 8])
    seconds = 2.0 if generate else 5.0  # of the source (generation: the prompt, continued by 4 s)
    sides = ["without"] if generate else ["without", "with"]
    pieces = max(1, args.pieces // 2) if generate else args.pieces
    results: dict = {"trait": args.trait, "task": args.task, "to": args.to, "sides": {}}
    for side in sides:
        names = []  # (source domain, piece file name)
        for domain in args.sources.split(","):
            files = sorted((args.unseen / side / domain).glob("*.*"))[:pieces]
            names += [(domain, f.name) for f in files]
            for f in files:
                excerpt(f, args.out / "sources" / side / domain / (f.stem + ".wav"), seconds, rate)
        # the target's real renderings of each piece without and with the trait: the midpoint
        span = None if generate else seconds
        real = {s: [measure(load_audio(args.unseen / s / args.to / name, rate)[: int(span * rate) if span else None],
                            rate) for _, name in names] for s in ("without", "with")}  # fmt: skip
        rows = {}
        outputs: dict[str, list[np.ndarray]] = {}
        for name, alpha, monitored in settings(alphas):
            folder = args.out / side / re.sub(r"[^0-9a-z.]+", "-", name)
            # the share each steered output was nudged, kept beside the outputs for a continued sweep
            shares_file = folder / "nudged.json"
            shares = json.loads(shares_file.read_text()) if shares_file.exists() else {}
            for domain, piece in names:
                source = args.out / "sources" / side / domain / (Path(piece).stem + ".wav")
                target = folder / domain / (Path(piece).stem + ".wav")
                if generate:
                    command = [*UMT, "generate", "--prompt", str(source), "--seconds", "4", "--to", args.to,
                               "-o", str(target), "--model", str(args.model), "--mode", args.mode]  # fmt: skip
                else:
                    command = [*UMT, "translate", str(source), "--to", args.to, "-o", str(folder / domain),
                               "--model", str(args.model), "--renderer", args.renderer]  # fmt: skip
                    target = folder / domain / args.to / (Path(piece).stem + ".wav")
                if not target.exists():
                    share = run(command + steer_flags(args.probe, alpha, monitored))
                    if share is not None:
                        shares[str(target.relative_to(folder))] = share
                        shares_file.write_text(json.dumps(shares))
                outputs.setdefault(name, []).append(load_audio(target, rate))
            audio = outputs[name]
            values = [measure(a, rate) for a in audio]
            tokens = [translator.tokenize(a).cpu() for a in audio]
            rows[name] = {
                "measure": float(np.mean(values)),
                "success": float(np.mean([success(v, lo, hi) for v, lo, hi in zip(values, *real.values())])),
                "chroma_to_unsteered": float(
                    np.mean([chroma_similarity(a, b, rate) for a, b in zip(audio, outputs[SETTINGS_ZERO])])
                ),
                "lm_nll_bits": float(np.mean([nll_bits(lm, [t]) for t in tokens])) if lm is not None else None,
                "nudged": float(np.mean(list(shares.values()))) if shares else None,
            }
            print(side, name, rows[name], flush=True)
        results["sides"][side] = {"real": {s: float(np.mean(v)) for s, v in real.items()}, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()

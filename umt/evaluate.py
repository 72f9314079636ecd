"""`umt evaluate`: how well a model translates, measured on the test split.

For every source -> target pair of domains, a few clips of each source are translated and
scored by
  - target accuracy: the share the independent judge (umt.judge) assigns to the target;
  - chroma similarity: frame-by-frame cosine of CQT chroma with the ground truth (the same
    piece rendered in the target domain, on a paired corpus) or with the input (unpaired);
  - log-mel L1 distance to the ground truth (paired only).
Reference rows score the untouched input (the identity baseline) and the ground truth itself.
A model that only copies its input shows high chroma similarity with low target accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from umt.audio import write_audio
from umt.data.manifest import FileEntry, Manifest
from umt.errors import UserError
from umt.fileio import atomic_path, write_json
from umt.judge import TRUSTED_JUDGE, Judge, LogMel
from umt.progress import Progress
from umt.train import TrainConfig, crop_datasets, validate
from umt.translator import Translator


@dataclass
class Clip:
    source: str  # domain
    piece: str | None
    entry: FileEntry
    start: int  # sample offset
    audio: np.ndarray


def chroma(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """CQT chroma [12, frames] (librosa)."""
    import librosa

    return librosa.feature.chroma_cqt(y=audio.astype(np.float32), sr=sample_rate, hop_length=512)


def chroma_similarity(a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
    """Mean over frames of the cosine between the chroma vectors of a and b (1 = same pitch content).

    A frame silent in both is left out (a shared rest is no disagreement); a frame silent in only
    one has no pitch content to match and counts as 0. Two silent clips score 1."""
    ca, cb = chroma(a, sample_rate), chroma(b, sample_rate)
    n = min(ca.shape[1], cb.shape[1])
    voiced_a, voiced_b = _voiced(a, n), _voiced(b, n)
    either = (voiced_a + voiced_b) > 0
    if not either.any():
        return 1.0
    ca, cb = ca[:, :n] * voiced_a, cb[:, :n] * voiced_b
    dot = (ca * cb).sum(0)
    norms = np.linalg.norm(ca, axis=0) * np.linalg.norm(cb, axis=0)
    cosine = np.where(norms > 0, dot / np.maximum(norms, 1e-12), 0.0)
    return float(cosine[either].mean())


def pitch_classes(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per frame (hop 512): the pitch class 0..11 of pyin's f0 (librosa, 65 Hz-2.1 kHz), -1 where
    unvoiced. pyin follows one voice: on polyphony, mostly the loudest or the top one."""
    import librosa

    f0, voiced, _ = librosa.pyin(
        audio.astype(np.float32), fmin=65.0, fmax=2100.0, sr=sample_rate, frame_length=2048, hop_length=512
    )
    classes = np.round(librosa.hz_to_midi(np.where(voiced, f0, 440.0))).astype(int) % 12
    return np.where(voiced, classes, -1)


def pitch_class_agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    """Share of frames voiced in both pitch-class tracks where the classes agree (None: no such frame)."""
    n = min(a.size, b.size)
    both = (a[:n] >= 0) & (b[:n] >= 0)
    return float((a[:n][both] == b[:n][both]).mean()) if both.any() else None


def _voiced(audio: np.ndarray, frames: int) -> np.ndarray:
    """1 for chroma frames (hop 512) with signal above -60 dBFS RMS, else 0."""
    padded = np.pad(audio, (0, max(0, frames * 512 - audio.size)))[: frames * 512].reshape(frames, 512)
    return (np.sqrt((padded**2).mean(1)) > 1e-3).astype(np.float32)


def choose_clips(manifest: Manifest, domain: str, clips: int, samples: int, split: str = "test") -> list[Clip]:
    """Up to `clips` clips per domain: the middle `samples` of each split file, in name order."""
    chosen = []
    for entry in sorted(manifest.entries(domain, split), key=lambda e: e.source):
        if entry.samples < samples or len(chosen) == clips:
            continue
        start = (entry.samples - samples) // 2
        chosen.append(Clip(domain, entry.piece, entry, start, manifest.excerpt(entry, start, samples)))
    return chosen


def paired_clip(manifest: Manifest, clip: Clip, domain: str, samples: int) -> Clip | None:
    """The same stretch of the same piece rendered in `domain`: the ground truth of a translation
    of `clip` (None when the piece has no rendering there that long)."""
    if clip.piece is None:
        return None
    for entry in manifest.entries(domain, clip.entry.split):
        if entry.piece == clip.piece and entry.samples >= clip.start + samples:
            return Clip(domain, clip.piece, entry, clip.start, manifest.excerpt(entry, clip.start, samples))
    return None


def _check_compatible(translator: Translator, judge: Judge | None, manifest: Manifest, domains: list[str], seconds: float) -> None:
    """Refuse combinations that would score nonsense instead of failing."""
    if translator.model.cfg.sample_rate != manifest.sample_rate:
        raise UserError(f"the model runs at {translator.model.cfg.sample_rate} Hz, {manifest.root} at {manifest.sample_rate} Hz")
    if judge is None:
        return
    if judge.cfg.sample_rate != manifest.sample_rate:
        raise UserError(f"the judge runs at {judge.cfg.sample_rate} Hz, {manifest.root} at {manifest.sample_rate} Hz")
    unknown = [d for d in domains if d not in judge.cfg.domains]
    if unknown:
        raise UserError(f"the judge was not trained on {', '.join(unknown)}: train it on this dataset (umt judge train)")
    if seconds < judge.cfg.crop_seconds:
        raise UserError(f"--seconds {seconds:g} is shorter than the judge's {judge.cfg.crop_seconds:g} s window")


def evaluate(
    translator: Translator, judge: Judge | None, manifest: Manifest, out: Path, clips: int = 8, seconds: float = 4.0,
    figures: int = 3, val_items: int = 16, judge_accuracy: float | None = None, split: str = "test",
) -> dict:  # fmt: skip
    """Translate clips of a split (the test split: pieces no model saw; the val split to choose
    settings by, so that the test split stays unseen) between every pair of domains, score them,
    write the report (judge_accuracy: the judge's own test accuracy on real audio, reported
    beside its verdicts)."""
    rate = manifest.sample_rate
    domains = [d for d in translator.domains if d in manifest.domains]
    if not domains:
        raise UserError(f"the model's domains ({', '.join(translator.domains)}) are not in {manifest.root}")
    _check_compatible(translator, judge, manifest, domains, seconds)
    samples = int(seconds * rate)
    by_domain = {d: choose_clips(manifest, d, clips, samples, split) for d in domains}
    empty = [d for d, c in by_domain.items() if not c]
    if empty:
        raise UserError(f"no {split} file of at least {seconds:g} s in domain(s) {', '.join(empty)} (try a smaller --seconds)")
    paired = manifest.paired
    spectral = translator.model.cfg.spectral
    mel = LogMel(rate, 1024, 256, 64)

    def log_mel_l1(a: np.ndarray, b: np.ndarray) -> float:
        with torch.no_grad():
            return float((mel(torch.from_numpy(a)[None]) - mel(torch.from_numpy(b)[None])).abs().mean())

    results: dict[str, dict] = {key: {} for key in METRICS}
    identity: dict[str, dict] = {key: {} for key in METRICS}
    examples = []
    tracks: dict[tuple[str, int], np.ndarray] = {}  # pitch classes of each input and reference clip, computed once

    def track(clip: Clip) -> np.ndarray:
        key = (clip.entry.path, clip.start)
        if key not in tracks:
            tracks[key] = pitch_classes(clip.audio, rate)
        return tracks[key]

    with Progress(len(domains) ** 2, "evaluate", "pair") as bar:
        for source in domains:
            inputs = by_domain[source]
            latents = [translator.encode(c.audio) for c in inputs]
            input_levels = [translator.levels(c.audio) for c in inputs] if paired and spectral else []
            # what the judge makes of the untouched inputs: the identity row and the ground-truth accuracy
            input_guesses = judge.classify([c.audio for c in inputs]) if judge is not None else None
            for target in domains:
                rendered = translator.decode(latents, [samples] * len(inputs), target, [f"{c.entry.source}" for c in inputs])
                references = [paired_clip(manifest, c, target, samples) if paired else None for c in inputs]
                scored = [(c, r, g) for c, r, g in zip(inputs, rendered, references) if g is not None or not paired]
                # chroma against the ground truth when there is one, else against the input
                against = [g or c for c, _, g in scored]
                results["chroma_similarity"].setdefault(source, {})[target] = _mean(
                    chroma_similarity(r, a.audio, rate) for (_, r, _), a in zip(scored, against)
                )
                identity["chroma_similarity"].setdefault(source, {})[target] = _mean(
                    chroma_similarity(c.audio, a.audio, rate) for (c, _, _), a in zip(scored, against)
                )
                results["pitch_class_agreement"].setdefault(source, {})[target] = _mean(
                    pitch_class_agreement(pitch_classes(r, rate), track(a)) for (_, r, _), a in zip(scored, against)
                )
                identity["pitch_class_agreement"].setdefault(source, {})[target] = _mean(
                    pitch_class_agreement(track(c), track(a)) for (c, _, _), a in zip(scored, against)
                )
                if paired:
                    results["logmel_l1"].setdefault(source, {})[target] = _mean(log_mel_l1(r, g.audio) for _, r, g in scored)
                    identity["logmel_l1"].setdefault(source, {})[target] = _mean(log_mel_l1(c.audio, g.audio) for c, _, g in scored)
                if paired and spectral:  # the frame network alone: its predicted spectrum against the truth's
                    truths = [(own, latent, translator.levels(g.audio)) for own, latent, g in zip(input_levels, latents, references) if g]
                    results["spectrum_l1"].setdefault(source, {})[target] = _mean(
                        _l1(translator.spectrum(latent, target), truth) for _, latent, truth in truths
                    )
                    identity["spectrum_l1"].setdefault(source, {})[target] = _mean(_l1(own, truth) for own, _, truth in truths)
                if judge is not None:
                    index = judge.cfg.domains.index(target)
                    results["target_accuracy"].setdefault(source, {})[target] = float(np.mean(judge.classify(rendered) == index))
                    identity["target_accuracy"].setdefault(source, {})[target] = float(np.mean(input_guesses == index))
                if source != target and sum(e[0].source == source for e in examples) < figures and scored:
                    c, r, g = scored[0]
                    examples.append((c, target, r, g))
                bar.update()

    metrics = {
        "model_domains": translator.domains,
        "domains": domains,
        "paired": paired,
        "clips_per_domain": {d: len(by_domain[d]) for d in domains},
        "seconds": seconds,
        "split": split,
        "temperature": translator.temperature,
        "renderer": translator.renderer,
        "latent": "tokens" if translator.tokens else "continuous",
        # every key is always there; null where it does not apply (no judge, unpaired data)
        **{k: v or None for k, v in results.items()},
        "identity": {k: v or None for k, v in identity.items()},
        # the ground truth against itself: chroma similarity 1 and distance 0 by construction
        "ground_truth": {"chroma_similarity": 1.0, "pitch_class_agreement": 1.0, "logmel_l1": 0.0} if paired else None,
        # real audio of each domain judged as that domain: the identity diagonal
        "ground_truth_target_accuracy": {d: identity["target_accuracy"][d][d] for d in domains} if judge else None,
        "judge_test_accuracy": judge_accuracy,
        "reconstruction": _reconstruction(translator, manifest, domains, val_items),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    figures_written = _figures(metrics, examples, out, rate)
    _report(metrics, figures_written, out)
    return metrics


METRICS = ("target_accuracy", "chroma_similarity", "pitch_class_agreement", "logmel_l1", "spectrum_l1")


def _l1(a: torch.Tensor, b: torch.Tensor) -> float:
    n = min(a.shape[0], b.shape[0])
    return float((a[:n] - b[:n]).abs().mean())


def _mean(values) -> float | None:
    """The mean of the values that are not None, or None (null in metrics.json) when there is none."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _reconstruction(translator: Translator, manifest: Manifest, domains: list[str], items: int) -> dict:
    """Teacher-forced scores per domain on val crops: CE in nats and bits per sample, a spectral
    decoder's spectrum L1, and the conditioning gain of each (see umt.train.validate)."""
    cfg = translator.model.cfg
    crops = TrainConfig(crop=(cfg.sample_rate // cfg.pool) * cfg.pool if cfg.spectral else 8 * cfg.pool, render_crop=8 * cfg.pool)
    sets = crop_datasets(translator.model, manifest, crops, domains, "val")
    if not sets:
        return {}
    scores = validate(translator.model, None, sets, items, 8, device=translator.device)
    names = {"nats": "ce", "bits": "bits", "spectrum_l1": "spectrum", "gain_nats": "gain/ce", "gain_spectrum_l1": "gain/spectrum"}
    return {d: {name: scores[f"{key}/{d}"] for name, key in names.items() if f"{key}/{d}" in scores} for d in sets}


def _figures(metrics: dict, examples: list, out: Path, rate: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    domains = metrics["domains"]
    for key, title in (
        ("target_accuracy", "target accuracy (judge)"),
        ("chroma_similarity", "chroma similarity"),
        ("pitch_class_agreement", "pitch-class agreement (pyin)"),
    ):
        if metrics[key] is None:
            continue
        matrix = np.array([[_number(metrics[key][s][t]) for t in domains] for s in domains])
        fig, ax = plt.subplots(figsize=(1.2 * len(domains) + 2, 1.0 * len(domains) + 1.5))
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(domains)), domains, rotation=30)
        ax.set_yticks(range(len(domains)), domains)
        ax.set_xlabel("target")
        ax.set_ylabel("source")
        ax.set_title(title)
        for i in range(len(domains)):
            for j in range(len(domains)):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color="white" if matrix[i, j] < 0.6 else "black")
        fig.colorbar(image)
        fig.tight_layout()
        _save_figure(fig, out / f"{key}.png")
        plt.close(fig)
        written.append(f"{key}.png")
    clip_dir = out / "clips"
    for n, (clip, target, rendered, truth) in enumerate(examples):
        panels = [("input: " + clip.source, clip.audio), ("translation: " + target, rendered)]
        if truth is not None:
            panels.append(("ground truth: " + target, truth.audio))
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), sharey=True)
        for ax, (title, audio) in zip(np.atleast_1d(axes), panels):
            ax.specgram(audio + 1e-7, NFFT=1024, Fs=rate, noverlap=768, cmap="magma")
            ax.set_title(title)
            ax.set_xlabel("s")
        np.atleast_1d(axes)[0].set_ylabel("Hz")
        fig.tight_layout()
        name = f"example{n}_{clip.source}_to_{target}"
        _save_figure(fig, out / f"{name}.png")
        plt.close(fig)
        written.append(f"{name}.png")
        for label, (_, audio) in zip(("input", "translation", "truth"), panels):
            write_audio(clip_dir / f"{name}_{label}.wav", audio, rate)
    return written


def _save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _number(value: float | None) -> float:
    return np.nan if value is None else value


def _table(domains: list[str], matrix: dict, digits: int = 2) -> list[str]:
    rows = ["| source \\ target | " + " | ".join(domains) + " |", "| --- " * (len(domains) + 1) + "|"]
    for s in domains:
        cells = ("n/a" if matrix[s][t] is None else f"{matrix[s][t]:.{digits}f}" for t in domains)
        rows.append(f"| {s} | " + " | ".join(cells) + " |")
    return rows


RECONSTRUCTION_COLUMNS = {
    "nats": "nats/sample", "bits": "bits/sample", "gain_nats": "conditioning gain (nats)",
    "spectrum_l1": "spectrum L1", "gain_spectrum_l1": "conditioning gain (spectrum L1)",
}  # fmt: skip


def _report(metrics: dict, figures: list[str], out: Path) -> None:
    lines = ["# Translation report", ""]
    lines.append(
        f"{sum(metrics['clips_per_domain'].values())} {metrics.get('split', 'test')} clips of {metrics['seconds']:g} s "
        f"({', '.join(f'{d}: {n}' for d, n in metrics['clips_per_domain'].items())}), temperature {metrics['temperature']:g}, "
        f"renderer {metrics['renderer']}, {metrics['latent']} latent; "
        + ("paired corpus: compared with the ground-truth rendering in the target domain." if metrics["paired"]
           else "unpaired data: chroma compared with the input.")  # fmt: skip
    )
    for key, title in (
        ("target_accuracy", "Target accuracy (share of translations the judge assigns to the target)"),
        ("chroma_similarity", "Chroma similarity of the translation"),
        ("pitch_class_agreement", "Pitch-class agreement (pyin, frames voiced in both)"),
        ("logmel_l1", "Log-mel L1 distance to the ground truth (lower is closer)"),
        ("spectrum_l1", "Semitone-spectrum L1 of the frame network's prediction to the ground truth (no renderer; lower is closer)"),
    ):
        if metrics[key] is not None:
            lines += ["", f"## {title}", "", *_table(metrics["domains"], metrics[key])]
            lines += ["", "Identity baseline (the untouched input):", "", *_table(metrics["domains"], metrics["identity"][key])]
            if key in (metrics["ground_truth"] or {}):
                lines += ["", f"Ground truth against itself: {metrics['ground_truth'][key]:.2f} everywhere."]
    accuracy = metrics["judge_test_accuracy"]
    if accuracy is not None and accuracy < TRUSTED_JUDGE:
        lines += ["", f"**Warning:** the judge is right on only {accuracy:.0%} of real test audio (below {TRUSTED_JUDGE:.0%}); "
                  "its target accuracies say little."]  # fmt: skip
    if metrics["ground_truth_target_accuracy"] is not None:
        lines += ["", "Judge accuracy on the real test audio of each domain (the ground-truth row): "
                  + ", ".join(f"{d} {v:.2f}" for d, v in metrics["ground_truth_target_accuracy"].items())]  # fmt: skip
    if metrics.get("reconstruction"):
        columns = [c for c in RECONSTRUCTION_COLUMNS if c in next(iter(metrics["reconstruction"].values()))]
        lines += ["", "## Reconstruction (teacher-forced, val split)", "",
                  "| domain | " + " | ".join(RECONSTRUCTION_COLUMNS[c] for c in columns) + " |", "| --- " * (len(columns) + 1) + "|"]
        lines += [f"| {d} | " + " | ".join(f"{v[c]:.3f}" for c in columns) + " |" for d, v in metrics["reconstruction"].items()]
        lines += ["", "Conditioning gain: the loss with another clip's conditioning minus with the clip's own "
                  "(near 0: the decoder ignores what it is given)."]  # fmt: skip
    if figures:
        lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")

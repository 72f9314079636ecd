"""`umt evaluate`: how well a model translates, measured on the test split.

For every source -> target pair of domains, a few clips of each source are translated by
every renderer (a spectral model: its WaveNet and the sines preview beside it, so the
WaveNet has to earn its place) and scored against a reference: the same piece rendered in
the target domain on a paired corpus (the ground truth), else the input (umt.measures):
  - target accuracy: the share the independent judge (umt.judge) assigns to the target;
  - notes: chroma similarity, pyin pitch-class agreement, basic-pitch note onset F1;
  - sound: the noise floor (and its excess over the target domain's real test audio), and on
    a paired corpus the log-spectral distance, a multi-resolution STFT distance and log-mel L1.
Reference rows score the untouched input (the identity baseline) and the target domain's
real audio. A model that only copies its input shows high chroma with low target accuracy.

Every report also shows that each measure can fail: the same measures on the real test audio
against itself, with white noise 40 dB below it, through 8-bit mu-law, as the same notes on
another instrument and as another piece on the same instrument (`can_fail`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from umt import measures
from umt.audio import mu_law_decode, mu_law_encode, write_audio
from umt.data.manifest import FileEntry, Manifest
from umt.errors import UserError
from umt.fileio import atomic_path, write_json
from umt.judge import TRUSTED_JUDGE, Judge, LogMel
from umt.progress import Progress
from umt.training.config import TrainConfig
from umt.training.data import crop_datasets
from umt.training.validation import validate
from umt.translator import Translator

# measure -> (title, higher is better, needs a paired corpus)
METRICS: dict[str, tuple[str, bool, bool]] = {
    "target_accuracy": ("Target accuracy (share of translations the judge assigns to the target)", True, False),
    "chroma_similarity": ("Chroma similarity", True, False),
    "pitch_class_agreement": ("Pitch-class agreement (pyin, frames voiced in both)", True, False),
    "onset_f1": ("Note onset F1 (basic-pitch notes, onsets within 50 ms, offsets ignored)", True, False),
    "noise_floor_db": (
        "Noise floor (dB below each frame's strongest bin; real audio of the target in the last row)",
        False,
        False,
    ),
    "noise_floor_excess_db": ("Noise floor above the target domain's real test audio (dB; 0 = as clean)", False, False),
    "lsd": ("Log-spectral distance to the ground truth (dB, ss-vq-vae's definition)", False, True),
    "mr_stft": ("Multi-resolution STFT distance to the ground truth", False, True),
    "logmel_l1": ("Log-mel L1 distance to the ground truth", False, True),
}
SPECTRUM_L1 = (
    "Semitone-spectrum L1 of the frame network's prediction to the ground truth (no renderer; lower is closer)"
)
NOISE_DB = -40.0  # the noise of the can-fail check, relative to the clip's RMS


@dataclass
class Clip:
    source: str  # domain
    piece: str | None
    entry: FileEntry
    start: int  # sample offset
    audio: np.ndarray

    @property
    def key(self) -> tuple[str, int]:
        return self.entry.path, self.start


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


class Scorer:
    """Every measure of a set of clips against their references; the pitch tracks and
    transcriptions of real clips (references, inputs) are computed once."""

    def __init__(self, rate: int, judge: Judge | None, paired: bool, real_floor: dict[str, float | None]):
        self.rate, self.judge, self.paired, self.real_floor = rate, judge, paired, real_floor
        self._tracks: dict = {}
        self._notes: dict = {}
        self.mel = LogMel(rate, 1024, 256, 64)

    def _track(self, clip: Clip) -> np.ndarray:
        if clip.key not in self._tracks:
            self._tracks[clip.key] = measures.pitch_classes(clip.audio, self.rate)
        return self._tracks[clip.key]

    def _transcription(self, clip: Clip) -> np.ndarray:
        if clip.key not in self._notes:
            self._notes[clip.key] = measures.transcribe(clip.audio, self.rate)
        return self._notes[clip.key]

    def _log_mel_l1(self, a: np.ndarray, b: np.ndarray) -> float:
        a, b = measures.common(a, b)
        with torch.no_grad():
            return float((self.mel(torch.from_numpy(a)[None]) - self.mel(torch.from_numpy(b)[None])).abs().mean())

    def score(
        self, audio: list[np.ndarray], references: list[Clip], target: str, own: list[Clip] | None = None
    ) -> dict:
        """Mean of every measure over clips `audio` against `references` (as `target`; `own`:
        the clips themselves when they are real, so their tracks are cached too)."""
        rate = self.rate
        tracks = [self._track(c) for c in own] if own else [measures.pitch_classes(a, rate) for a in audio]
        notes = [self._transcription(c) for c in own] if own else [measures.transcribe(a, rate) for a in audio]
        floors = [measures.noise_floor_db(a) for a in audio]
        real = self.real_floor.get(target)
        row = {
            "chroma_similarity": _mean(measures.chroma_similarity(a, r.audio, rate) for a, r in zip(audio, references)),
            "pitch_class_agreement": _mean(
                measures.pitch_class_agreement(t, self._track(r)) for t, r in zip(tracks, references)
            ),
            "onset_f1": _mean(measures.onset_f1(n, self._transcription(r)) for n, r in zip(notes, references)),
            "noise_floor_db": _mean(floors),
            "noise_floor_excess_db": _mean(f - real for f in floors if f is not None) if real is not None else None,
        }
        if self.paired:
            row["lsd"] = _mean(measures.lsd(a, r.audio, rate) for a, r in zip(audio, references))
            row["mr_stft"] = _mean(measures.mr_stft_distance(a, r.audio) for a, r in zip(audio, references))
            row["logmel_l1"] = _mean(self._log_mel_l1(a, r.audio) for a, r in zip(audio, references))
        if self.judge is not None:
            row["target_accuracy"] = float(np.mean(self.judge.classify(audio) == self.judge.cfg.domains.index(target)))
        return row


def _check_compatible(
    translator: Translator, judge: Judge | None, manifest: Manifest, domains: list[str], seconds: float
) -> None:
    """Refuse combinations that would score nonsense instead of failing."""
    if translator.model.cfg.sample_rate != manifest.sample_rate:
        raise UserError(
            f"the model runs at {translator.model.cfg.sample_rate} Hz, {manifest.root} at {manifest.sample_rate} Hz"
        )
    if judge is None:
        return
    if judge.cfg.sample_rate != manifest.sample_rate:
        raise UserError(f"the judge runs at {judge.cfg.sample_rate} Hz, {manifest.root} at {manifest.sample_rate} Hz")
    unknown = [d for d in domains if d not in judge.cfg.domains]
    if unknown:
        raise UserError(
            f"the judge was not trained on {', '.join(unknown)}: train it on this dataset (umt judge train)"
        )
    if seconds < judge.cfg.crop_seconds:
        raise UserError(f"--seconds {seconds:g} is shorter than the judge's {judge.cfg.crop_seconds:g} s window")


def renderers_of(translator: Translator) -> list[str]:
    """The translator's own renderer, and for a spectral model rendering with its WaveNet the sines preview beside it."""
    if translator.renderer == "wavenet" and translator.model.cfg.spectral:
        return ["wavenet", "sines"]
    return [translator.renderer]


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
        raise UserError(
            f"no {split} file of at least {seconds:g} s in domain(s) {', '.join(empty)} (try a smaller --seconds)"
        )
    paired = manifest.paired
    spectral = translator.model.cfg.spectral
    renderers = renderers_of(translator)
    real_floor = {d: _mean(measures.noise_floor_db(c.audio) for c in by_domain[d]) for d in domains}
    scorer = Scorer(rate, judge, paired, real_floor)

    results: dict[str, dict] = {r: {} for r in renderers}  # renderer -> metric -> source -> target
    identity: dict[str, dict] = {}
    spectrum_l1: dict[str, dict] = {}
    examples = []
    with Progress(len(domains) ** 2, "evaluate", "pair") as bar:
        for source in domains:
            inputs = by_domain[source]
            latents = [translator.encode(c.audio) for c in inputs]
            input_levels = [translator.levels(c.audio) for c in inputs] if paired and spectral else []
            for target in domains:
                references = [paired_clip(manifest, c, target, samples) if paired else c for c in inputs]
                kept = [i for i, r in enumerate(references) if r is not None]
                refs = [references[i] for i in kept]
                rendered = {}
                for renderer in renderers:
                    translator.renderer = renderer
                    rendered[renderer] = translator.decode([latents[i] for i in kept], [samples] * len(kept), target,
                                                           [inputs[i].entry.source for i in kept])  # fmt: skip
                    _store(
                        results[renderer],
                        source,
                        target,
                        scorer.score(rendered[renderer], refs, target) if kept else {},
                    )
                _store(
                    identity,
                    source,
                    target,
                    scorer.score([inputs[i].audio for i in kept], refs, target, own=[inputs[i] for i in kept]),
                )
                if paired and spectral and kept:  # the frame network alone: its predicted spectrum against the truth's
                    truths = [translator.levels(r.audio) for r in refs]
                    spectrum_l1.setdefault(source, {})[target] = _mean(
                        _l1(translator.spectrum(latents[i], target), truth) for i, truth in zip(kept, truths)
                    )
                    identity.setdefault("spectrum_l1", {}).setdefault(source, {})[target] = _mean(
                        _l1(input_levels[i], truth) for i, truth in zip(kept, truths)
                    )
                if source != target and sum(e[0].source == source for e in examples) < figures and kept:
                    examples.append((inputs[kept[0]], target, rendered[renderers[0]][0], refs[0] if paired else None))
                bar.update()
    translator.renderer = renderers[0]

    metrics = {
        "model_domains": translator.domains,
        "domains": domains,
        "paired": paired,
        "clips_per_domain": {d: len(by_domain[d]) for d in domains},
        "seconds": seconds,
        "split": split,
        "sampling": {d: asdict(translator.sampling[d]) for d in domains},
        "renderers": renderers,
        "latent": "tokens" if translator.tokens else "continuous",
        "results": {
            r: {k: results[r].get(k) for k in METRICS} for r in renderers
        },  # null where a measure does not apply
        "summary": {r: _summary(results[r], domains) for r in renderers},
        "identity": {k: identity.get(k) for k in [*METRICS, "spectrum_l1"]},
        "spectrum_l1": spectrum_l1 or None,
        "real": {
            "noise_floor_db": real_floor,
            # real audio of each domain judged as that domain: the identity diagonal
            "target_accuracy": {d: identity["target_accuracy"][d][d] for d in domains} if judge else None,
        },
        "judge_test_accuracy": judge_accuracy,
        "can_fail": can_fail(scorer, manifest, by_domain, samples),
        "reconstruction": _reconstruction(translator, manifest, domains, val_items),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    figures_written = _figures(metrics, examples, out, rate)
    _report(metrics, figures_written, out)
    return metrics


def can_fail(scorer: Scorer, manifest: Manifest, by_domain: dict[str, list[Clip]], samples: int) -> dict[str, dict]:
    """Every measure on the real test audio of each domain (as that domain, against itself) and
    on worse audio of the same references: noise 40 dB down, 8-bit mu-law (the coding of a
    WaveNet renderer's output), the same notes on another instrument (a paired corpus), another
    piece on the same instrument. A measure that scores the worse audio as well as the real one
    cannot tell them apart."""
    rows: dict[str, list[dict]] = {}
    for domain, clips in by_domain.items():
        worse: dict[str, list[np.ndarray]] = {
            "real audio (against itself)": [c.audio for c in clips],
            f"with white noise {NOISE_DB:g} dB": [
                measures.add_noise(c.audio, NOISE_DB, seed=i) for i, c in enumerate(clips)
            ],
            "through 8-bit mu-law": [mu_law_decode(mu_law_encode(torch.from_numpy(c.audio))).numpy() for c in clips],
            "another piece, same instrument": [clips[(i + 1) % len(clips)].audio for i in range(len(clips))],
        }
        if manifest.paired:
            for other in by_domain:
                pairs = [paired_clip(manifest, c, other, samples) for c in clips] if other != domain else []
                if pairs and all(p is not None for p in pairs):
                    worse.setdefault("same notes, another instrument", []).extend(p.audio for p in pairs)
        for name, audio in worse.items():
            references = clips * (len(audio) // len(clips))
            own = clips if name.startswith("real audio") else None
            rows.setdefault(name, []).append(scorer.score(audio, references, domain, own=own))
    return {name: {k: _mean(r.get(k) for r in scores) for k in METRICS} for name, scores in rows.items()}


def _store(table: dict, source: str, target: str, row: dict) -> None:
    for key, value in row.items():
        table.setdefault(key, {}).setdefault(source, {})[target] = value


def _summary(results: dict, domains: list[str]) -> dict:
    """Per measure: the mean off the diagonal and the mean of each target column off the diagonal."""
    summary = {}
    for key, matrix in results.items():
        columns = {t: _mean(matrix[s][t] for s in domains if s != t) for t in domains}
        summary[key] = {"off_diagonal": _mean(columns.values()), "columns": columns}
    return summary


def _l1(a: torch.Tensor, b: torch.Tensor) -> float:
    n = min(a.shape[0], b.shape[0])
    return float((a[:n] - b[:n]).abs().mean())


def _mean(values) -> float | None:
    """The mean of the values that are not None, or None (null in metrics.json) when there is none."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _reconstruction(translator: Translator, manifest: Manifest, domains: list[str], items: int) -> dict:
    """Teacher-forced scores per domain on val crops: CE in nats and bits per sample, a spectral
    decoder's spectrum L1, and the conditioning gain of each (see umt.training.validation.validate)."""
    cfg = translator.model.cfg
    crops = TrainConfig(
        crop=(cfg.sample_rate // cfg.pool) * cfg.pool if cfg.spectral else 8 * cfg.pool, render_crop=8 * cfg.pool
    )
    sets = crop_datasets(translator.model, manifest, crops, domains, "val")
    if not sets:
        return {}
    scores = validate(translator.model, None, sets, items, 8, device=translator.device)
    names = {
        "nats": "ce",
        "bits": "bits",
        "spectrum_l1": "spectrum",
        "gain_nats": "gain/ce",
        "gain_spectrum_l1": "gain/spectrum",
    }
    return {d: {name: scores[f"{key}/{d}"] for name, key in names.items() if f"{key}/{d}" in scores} for d in sets}


HEATMAPS = ("target_accuracy", "chroma_similarity", "onset_f1", "noise_floor_excess_db")


def _figures(metrics: dict, examples: list, out: Path, rate: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    domains = metrics["domains"]
    for renderer, results in metrics["results"].items():
        for key in HEATMAPS:
            if results[key] is None:
                continue
            matrix = np.array([[_number(results[key][s][t]) for t in domains] for s in domains])
            bounded = METRICS[key][1]  # scores in [0, 1]; the floor's excess in dB
            fig, ax = plt.subplots(figsize=(1.2 * len(domains) + 2, 1.0 * len(domains) + 1.5))
            image = ax.imshow(
                matrix,
                vmin=0 if bounded else None,
                vmax=1 if bounded else None,
                cmap="viridis" if bounded else "magma_r",
            )
            ax.set_xticks(range(len(domains)), domains, rotation=30)
            ax.set_yticks(range(len(domains)), domains)
            ax.set_xlabel("target")
            ax.set_ylabel("source")
            ax.set_title(f"{key.replace('_', ' ')} ({renderer})")
            for i in range(len(domains)):
                for j in range(len(domains)):
                    ax.text(
                        j,
                        i,
                        f"{matrix[i, j]:.2f}" if bounded else f"{matrix[i, j]:.0f}",
                        ha="center",
                        va="center",
                        color="grey",
                    )
            fig.colorbar(image)
            fig.tight_layout()
            name = f"{key}_{renderer}.png"
            _save_figure(fig, out / name)
            plt.close(fig)
            written.append(name)
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


def _cell(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(domains: list[str], matrices: list[dict], digits: int = 2) -> list[str]:
    """source x target; each cell the matrices' values joined by ' / '."""
    rows = ["| source \\ target | " + " | ".join(domains) + " |", "| --- " * (len(domains) + 1) + "|"]
    for s in domains:
        cells = (" / ".join(_cell(m[s][t], digits) for m in matrices) for t in domains)
        rows.append(f"| {s} | " + " | ".join(cells) + " |")
    return rows


RECONSTRUCTION_COLUMNS = {
    "nats": "nats/sample", "bits": "bits/sample", "gain_nats": "conditioning gain (nats)",
    "spectrum_l1": "spectrum L1", "gain_spectrum_l1": "conditioning gain (spectrum L1)",
}  # fmt: skip


def _sampling_text(sampling: dict[str, dict]) -> str:
    """'temperature 0, flutter 1', or per domain where the domains differ."""
    parts = []
    for key in ("temperature", "flutter"):
        values = {d: s[key] for d, s in sampling.items()}
        same = len(set(values.values())) == 1
        parts.append(
            f"{key} {next(iter(values.values())):g}"
            if same
            else f"{key} " + ", ".join(f"{d} {v:g}" for d, v in values.items())
        )
    return ", ".join(parts)


def _report(metrics: dict, figures: list[str], out: Path) -> None:
    domains, renderers = metrics["domains"], metrics["renderers"]
    both = " / ".join(renderers)
    lines = ["# Translation report", ""]
    lines.append(
        f"{sum(metrics['clips_per_domain'].values())} {metrics['split']} clips of {metrics['seconds']:g} s "
        f"({', '.join(f'{d}: {n}' for d, n in metrics['clips_per_domain'].items())}), {_sampling_text(metrics['sampling'])}, "
        f"renderers {both} (each cell: {both}), {metrics['latent']} latent; "
        + (
            "paired corpus: compared with the ground-truth rendering in the target domain."
            if metrics["paired"]
            else "unpaired data: compared with the input."
        )
    )
    lines += ["", "## Summary (off the diagonal; the weakest target column in brackets)", "",
              "| measure | " + " | ".join(renderers) + " | untouched input |", "| --- " * (len(renderers) + 2) + "|"]  # fmt: skip
    identity_summary = _summary(
        {k: v for k, v in metrics["identity"].items() if v is not None and k in METRICS}, domains
    )
    for key, (_, higher, _) in METRICS.items():
        if metrics["results"][renderers[0]][key] is None:
            continue
        cells = []
        for r in renderers:
            s = metrics["summary"][r][key]
            columns = [v for v in s["columns"].values() if v is not None]
            worst = (min if higher else max)(columns) if columns else None
            cells.append(f"{_cell(s['off_diagonal'])} ({_cell(worst)})")
        lines.append(
            f"| {key} | " + " | ".join(cells) + f" | {_cell(identity_summary.get(key, {}).get('off_diagonal'))} |"
        )
    for key, (title, _, _) in METRICS.items():
        matrices = [metrics["results"][r][key] for r in renderers]
        if matrices[0] is None:
            continue
        lines += ["", f"## {title}", "", *_table(domains, matrices)]
        if metrics["identity"][key] is not None:
            lines += ["", "Identity baseline (the untouched input):", "", *_table(domains, [metrics["identity"][key]])]
        if key == "noise_floor_db":
            lines += [
                "",
                "Real test audio of each domain: "
                + ", ".join(f"{d} {_cell(v, 1)} dB" for d, v in metrics["real"]["noise_floor_db"].items()),
            ]
    if metrics["spectrum_l1"] is not None:
        lines += ["", f"## {SPECTRUM_L1}", "", *_table(domains, [metrics["spectrum_l1"]])]
        lines += [
            "",
            "Identity baseline (the untouched input):",
            "",
            *_table(domains, [metrics["identity"]["spectrum_l1"]]),
        ]
    accuracy = metrics["judge_test_accuracy"]
    if accuracy is not None and accuracy < TRUSTED_JUDGE:
        lines += [
            "",
            (
                f"**Warning:** the judge is right on only {accuracy:.0%} of real test audio "
                f"(below {TRUSTED_JUDGE:.0%}); its target accuracies say little."
            ),
        ]
    if metrics["real"]["target_accuracy"] is not None:
        lines += ["", "Judge accuracy on the real test audio of each domain: "
                  + ", ".join(f"{d} {v:.2f}" for d, v in metrics["real"]["target_accuracy"].items())]  # fmt: skip
    keys = [k for k in METRICS if any(row[k] is not None for row in metrics["can_fail"].values())]
    lines += ["", "## Can each measure fail? The real test audio against itself, and worse audio against it", "",
              "| audio | " + " | ".join(keys) + " |", "| --- " * (len(keys) + 1) + "|"]  # fmt: skip
    lines += [
        f"| {name} | " + " | ".join(_cell(row[k]) for k in keys) + " |" for name, row in metrics["can_fail"].items()
    ]
    if metrics.get("reconstruction"):
        columns = [c for c in RECONSTRUCTION_COLUMNS if c in next(iter(metrics["reconstruction"].values()))]
        lines += [
            "",
            "## Reconstruction (teacher-forced, val split)",
            "",
            "| domain | " + " | ".join(RECONSTRUCTION_COLUMNS[c] for c in columns) + " |",
            "| --- " * (len(columns) + 1) + "|",
        ]
        lines += [
            f"| {d} | " + " | ".join(f"{v[c]:.3f}" for c in columns) + " |"
            for d, v in metrics["reconstruction"].items()
        ]
        lines += [
            "",
            (
                "Conditioning gain: the loss with another clip's conditioning minus with the clip's own "
                "(near 0: the decoder ignores what it is given)."
            ),
        ]
    if figures:
        lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def off_diagonal_means(metrics: dict) -> dict[str, dict[str, float | None]]:
    """renderer -> measure -> its mean off the diagonal (what the command line prints)."""
    return {r: {k: v["off_diagonal"] for k, v in s.items()} for r, s in metrics["summary"].items()}

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
from umt.audio import mu_law_decode, mu_law_encode
from umt.data.manifest import FileEntry, Manifest
from umt.errors import UserError
from umt.fileio import write_json
from umt.judge import Judge, LogMel
from umt.progress import Progress
from umt.recipes import Crops, recipe
from umt.report import METRICS, draw_figures, mean_of, summary, write_report
from umt.translator import Translator
from umt.validation import validate

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
            "chroma_similarity": mean_of(
                measures.chroma_similarity(a, r.audio, rate) for a, r in zip(audio, references)
            ),
            "pitch_class_agreement": mean_of(
                measures.pitch_class_agreement(t, self._track(r)) for t, r in zip(tracks, references)
            ),
            "onset_f1": mean_of(measures.onset_f1(n, self._transcription(r)) for n, r in zip(notes, references)),
            "noise_floor_db": mean_of(floors),
            "noise_floor_excess_db": mean_of(f - real for f in floors if f is not None) if real is not None else None,
        }
        if self.paired:
            row["lsd"] = mean_of(measures.lsd(a, r.audio, rate) for a, r in zip(audio, references))
            row["mr_stft"] = mean_of(measures.mr_stft_distance(a, r.audio) for a, r in zip(audio, references))
            row["logmel_l1"] = mean_of(self._log_mel_l1(a, r.audio) for a, r in zip(audio, references))
            row["envelope_correlation"] = mean_of(
                measures.envelope_correlation(a, r.audio) for a, r in zip(audio, references)
            )
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
    real_floor = {d: mean_of(measures.noise_floor_db(c.audio) for c in by_domain[d]) for d in domains}
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
                    spectrum_l1.setdefault(source, {})[target] = mean_of(
                        _l1(translator.spectrum(latents[i], target), truth) for i, truth in zip(kept, truths)
                    )
                    identity.setdefault("spectrum_l1", {}).setdefault(source, {})[target] = mean_of(
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
        "summary": {r: summary(results[r], domains) for r in renderers},
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
    figures_written = draw_figures(metrics, examples, out, rate)
    write_report(metrics, figures_written, out)
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
    return {name: {k: mean_of(r.get(k) for r in scores) for k in METRICS} for name, scores in rows.items()}


def _store(table: dict, source: str, target: str, row: dict) -> None:
    for key, value in row.items():
        table.setdefault(key, {}).setdefault(source, {})[target] = value


def _l1(a: torch.Tensor, b: torch.Tensor) -> float:
    n = min(a.shape[0], b.shape[0])
    return float((a[:n] - b[:n]).abs().mean())


def _reconstruction(translator: Translator, manifest: Manifest, domains: list[str], items: int) -> dict:
    """Teacher-forced scores per domain on val crops: CE in nats and bits per sample, a spectral
    decoder's spectrum L1, and the conditioning gain of each (see umt.validation.validate)."""
    cfg = translator.model.cfg
    crops = Crops(
        crop=(cfg.sample_rate // cfg.pool) * cfg.pool if cfg.spectral else 8 * cfg.pool, render_crop=8 * cfg.pool
    )
    sets = recipe(cfg).datasets(translator.model, manifest, domains, "val", crops)
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

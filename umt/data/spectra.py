"""Training batches of the spectral recipe: semitone spectra of whole files, cropped.

The spectrum (amplitude and phase, umt.spectral) of every file of a split is computed once
when a run starts and kept in memory (about 75 MB per 16 minutes of audio), so a training
step of the frame-rate networks costs no signal processing at all. An item holds
  - a frame crop: the clean spectrum levels (the frame network's target) and the same with the
    paper's pitch augmentation applied at the front end (a random 1/4..1/2 of the crop moved by
    up to half a semitone) and, optionally, a random spectral envelope (umt.data.augment), the
    encoder's input;
  - a render crop: the audio (float samples), the spectrum levels of its frames (the renderer's
    conditioning) and amplitude and phase of its frames plus one (the excitation).
Like CropDataset, item i is a pure function of (seed, domain, i).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch.utils.data import Dataset

from umt.data.augment import random_envelope, random_segment
from umt.data.manifest import Manifest, pcm_to_float
from umt.errors import UserError
from umt.spectral import SemitoneSpectrum, apply_gain, level, shift_segment

ANALYSIS_SECONDS = 60  # audio analysed at once (bounds the memory of the transform)


class SpectrumStore:
    """Audio (memory-mapped int16) and spectrum of every file of one domain's split."""

    def __init__(self, manifest: Manifest, domain: str, split: str, spectrum: SemitoneSpectrum):
        self.hop = spectrum.hop
        self.entries = manifest.entries(domain, split)
        self.audio = [manifest.load(e) for e in self.entries]
        self.amplitude, self.phase = [], []
        with torch.no_grad():
            for pcm in self.audio:
                amp, ph = analyse(spectrum, pcm_to_float(np.asarray(pcm)))
                self.amplitude.append(amp)
                self.phase.append(ph)

    def frames(self, file: int) -> int:
        """Whole frames of audio in a file (its spectrum has one more)."""
        return self.audio[file].shape[0] // self.hop


def analyse(spectrum: SemitoneSpectrum, audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitude and phase [len // hop + 1, bins] of a whole recording, in pieces of
    ANALYSIS_SECONDS with enough margin that the result equals a single transform."""
    hop = spectrum.hop
    frames = audio.size // hop + 1
    piece = ANALYSIS_SECONDS * spectrum.sample_rate // hop
    margin = spectrum.margin
    padded = np.zeros(frames * hop, dtype=np.float32)
    padded[: audio.size] = audio
    x = torch.from_numpy(padded).to(spectrum.gain.device)
    amps, phases = [], []
    for first in range(0, frames, piece):
        last = min(frames, first + piece)
        lo, hi = max(0, first - margin), min(frames, last + margin)
        amp, ph = spectrum(x[lo * hop : hi * hop][None])
        # frame j of this piece is frame lo + j of the recording; beyond hi the audio is not zero
        # only if hi < frames, and then the margin keeps those frames out of [first, last)
        amps.append(amp[0, first - lo : last - lo].cpu())
        phases.append(ph[0, first - lo : last - lo].cpu())
    return torch.cat(amps), torch.cat(phases)


class SpectralCrops(Dataset):
    """Random frame crops and render crops of one domain (see the module docstring).

    frame_crop and render_crop are in frames; 0 leaves that part out of the items. With
    augment, timbre_db > 0 adds a random envelope of up to that many dB to the encoder's input.
    """

    def __init__(self, store: SpectrumStore, domain: str, frame_crop: int, render_crop: int,
                 augment: bool = True, seed: int = 0, timbre_db: float = 0.0):  # fmt: skip
        self.store, self.frame_crop, self.render_crop, self.augment, self.seed = (
            store,
            frame_crop,
            render_crop,
            augment,
            seed,
        )
        self.timbre_db = timbre_db
        self.domain_key = zlib.crc32(domain.encode())
        longest = max(frame_crop, render_crop)
        self.files = [i for i in range(len(store.entries)) if store.frames(i) >= longest]
        if not self.files:
            raise UserError(f"domain {domain!r}: no file of at least {longest * store.hop} samples")
        # crop positions uniform over every possible start, per part
        self.ends = {
            n: np.cumsum([store.frames(i) - n + 1 for i in self.files]) for n in {frame_crop, render_crop} if n
        }

    def _position(self, rng: np.random.Generator, length: int) -> tuple[int, int]:
        ends = self.ends[length]
        position = int(rng.integers(ends[-1]))
        k = int(np.searchsorted(ends, position, side="right"))
        return self.files[k], position - (int(ends[k - 1]) if k else 0)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.domain_key, index])
        item: dict[str, torch.Tensor] = {}
        s = self.store
        if self.frame_crop:
            file, start = self._position(rng, self.frame_crop)
            clean = level(s.amplitude[file][start : start + self.frame_crop])
            item["levels"] = clean
            if self.augment:
                seg = random_segment(self.frame_crop, rng)
                levels_in = shift_segment(
                    clean[None], torch.tensor([seg.start]), torch.tensor([seg.stop]), torch.tensor([seg.semitones])
                )[0]
                if self.timbre_db:
                    levels_in = apply_gain(
                        levels_in, torch.from_numpy(random_envelope(clean.shape[-1], rng, self.timbre_db))
                    )
                item["levels_in"] = levels_in
            else:
                item["levels_in"] = clean
        if self.render_crop:
            file, start = self._position(rng, self.render_crop)
            n, hop = self.render_crop, s.hop
            pcm = np.asarray(s.audio[file][start * hop : (start + n) * hop])
            item["audio"] = torch.from_numpy(pcm_to_float(pcm))
            amp = s.amplitude[file][start : start + n + 1]
            item["render_levels"] = level(amp[:n])
            item["amplitude"] = amp
            item["phase"] = s.phase[file][start : start + n + 1]
        return item

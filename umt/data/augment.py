"""Augmentations of the encoder's input (the decoders' targets stay clean).

The paper's pitch augmentation shifts a random part of each training crop by up to half a
semitone: without it the encoder can memorise exact waveforms and the decoders learn to copy;
with it the latent has to describe the music rather than the recording.

The spectral recipe adds a timbre augmentation: a random smooth spectral envelope (gain, tilt
and slow ripples over the semitone bins) over the whole crop. An instrument's harmonic profile
is, to first order, such an envelope; when the input's envelope is random, the latent cannot
carry it, and each decoder has to supply its own domain's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    start: int
    stop: int
    semitones: float


def random_segment(length: int, rng: np.random.Generator, max_semitones: float = 0.5) -> Segment:
    """A segment of 1/4..1/2 of the crop that starts in the crop's first half."""
    size = int(rng.integers(length // 4, length // 2 + 1))
    start = int(rng.integers(0, length // 2))
    return Segment(start, min(length, start + size), float(rng.uniform(-max_semitones, max_semitones)))


def random_envelope(bins: int, rng: np.random.Generator, max_db: float, ripples: int = 4) -> np.ndarray:
    """A gain in dB per bin: gain + tilt + `ripples` cosines of 1..ripples cycles over the bins
    (random amplitudes falling as 1/k, random phases), scaled to a peak of U(0, max_db)."""
    x = np.linspace(-0.5, 0.5, bins)
    curve = rng.uniform(-1, 1) + rng.uniform(-1, 1) * 2 * x
    for k in range(1, ripples + 1):
        curve += rng.uniform(-1, 1) / k * np.cos(2 * np.pi * k * x + rng.uniform(0, 2 * np.pi))
    return (curve * (rng.uniform(0, max_db) / np.abs(curve).max())).astype(np.float32)


def pitch_shift_segment(audio: np.ndarray, sample_rate: int, segment: Segment) -> np.ndarray:
    """A copy of `audio` whose `segment` is pitch-shifted (librosa: time stretch + resample).

    The length is unchanged and every sample outside the segment is untouched.
    """
    import librosa  # imported here: it takes seconds and only DataLoader workers need it

    out = np.array(audio, dtype=np.float32)
    part = out[segment.start : segment.stop]
    # A 64 ms analysis window (1024 at 16 kHz), smaller if the segment is shorter than that.
    n_fft = 1 << int(np.log2(min(0.064 * sample_rate, part.size)))
    shifted = librosa.effects.pitch_shift(
        part, sr=sample_rate, n_steps=segment.semitones, res_type="soxr_hq", n_fft=n_fft, hop_length=n_fft // 4
    )
    out[segment.start : segment.stop] = np.clip(shifted, -1.0, 1.0)
    return out

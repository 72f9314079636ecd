"""The paper's pitch augmentation: shift a random part of each training crop by up to half a semitone.

Without it the encoder can memorise exact waveforms and the decoders learn to copy;
with it the latent has to describe the music rather than the recording.
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

"""What a translation sounds like, measured against a reference (the same notes played in the
target domain, on a paired corpus) without a model of our own in the loop.

Notes:
  - chroma_similarity: frame-by-frame cosine of CQT chroma (librosa);
  - pitch_classes / pitch_class_agreement: pyin's f0 as pitch classes, frames voiced in both;
  - onset_f1: notes transcribed by basic-pitch (Bittner et al. 2022; its ONNX model ships in the
    wheel) from both clips, matched by mir_eval with onsets within 50 ms and offsets ignored
    (the transfer measure of Demerle et al., ISMIR 2024).
Sound:
  - noise_floor_db: per sounding STFT frame, the 20th-percentile bin relative to the frame's
    strongest bin; the median over frames. Hiss raises it; a clean instrument sits 60-90 dB down.
  - lsd: log-spectral distance as ss-vq-vae (Cifka et al. 2021) computes it: both clips scaled to
    unit power, librosa mel power spectrograms in dB (80 dB range), per frame the RMS over bands of
    the difference, averaged over frames.
  - mr_stft_distance: multi-resolution STFT distance (spectral convergence plus log-magnitude L1,
    averaged over three resolutions), as the vocoder literature trains and scores with.
Music, of one clip (generated continuations against the corpus's own clips):
  - note_statistics: from basic-pitch's notes, notes per second, the entropy of their pitch
    classes (bits; 0 for one pitch class, log2 12 = 3.58 for all alike), and repetition, the
    share of the note-pitch trigrams that already occurred earlier in the clip.
Envelopes:
  - envelope_correlation: Pearson correlation of the two clips' loudness envelopes (RMS in dB per
    16 ms, the quietest 50 dB below the loudest): a piano's strike-and-decay at every note against
    an organ's held level. It ignores level and timbre, so it fails on other dynamics only.
Every measure takes mono float32 numpy clips at `rate`; a measure of two clips compares their
common length.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

CHROMA_HOP = 512
SILENT_RMS = 1e-3  # -60 dBFS: a chroma frame quieter than this has no pitch content
NOISE_FLOOR_PERCENTILE = 20
NOISE_FLOOR_FFT, NOISE_FLOOR_HOP = 2048, 512
SOUNDING_DB = 40  # frames within this many dB of the clip's loudest frame count for the noise floor
ONSET_TOLERANCE = 0.05  # seconds
MR_STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop)
ENVELOPE_FRAME, ENVELOPE_HOP = 1024, 256
ENVELOPE_RANGE_DB = 50


def common(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(a.size, b.size)
    return a[:n].astype(np.float32), b[:n].astype(np.float32)


# ---------------------------------------------------------------- notes


def chroma(audio: np.ndarray, rate: int) -> np.ndarray:
    """CQT chroma [12, frames] (librosa)."""
    import librosa

    return librosa.feature.chroma_cqt(y=audio.astype(np.float32), sr=rate, hop_length=CHROMA_HOP)


def chroma_similarity(a: np.ndarray, b: np.ndarray, rate: int) -> float:
    """Mean over frames of the cosine between the chroma vectors of a and b (1 = same pitch content).

    A frame silent in both is left out (a shared rest is no disagreement); a frame silent in only
    one has no pitch content to match and counts as 0. Two silent clips score 1."""
    ca, cb = chroma(a, rate), chroma(b, rate)
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


def _voiced(audio: np.ndarray, frames: int) -> np.ndarray:
    """1 for chroma frames with signal above -60 dBFS RMS, else 0."""
    padded = np.pad(audio, (0, max(0, frames * CHROMA_HOP - audio.size)))[: frames * CHROMA_HOP].reshape(
        frames, CHROMA_HOP
    )
    return (np.sqrt((padded**2).mean(1)) > SILENT_RMS).astype(np.float32)


def pitch_classes(audio: np.ndarray, rate: int) -> np.ndarray:
    """Per frame (hop 512): the pitch class 0..11 of pyin's f0 (librosa, 65 Hz-2.1 kHz), -1 where
    unvoiced. pyin follows one voice: on polyphony, mostly the loudest or the top one."""
    import librosa

    f0, voiced, _ = librosa.pyin(
        audio.astype(np.float32), fmin=65.0, fmax=2100.0, sr=rate, frame_length=2048, hop_length=CHROMA_HOP
    )
    classes = np.round(librosa.hz_to_midi(np.where(voiced, f0, 440.0))).astype(int) % 12
    return np.where(voiced, classes, -1)


def pitch_class_agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    """Share of frames voiced in both pitch-class tracks where the classes agree (None: no such frame)."""
    n = min(a.size, b.size)
    both = (a[:n] >= 0) & (b[:n] >= 0)
    return float((a[:n][both] == b[:n][both]).mean()) if both.any() else None


@lru_cache(maxsize=1)
def _basic_pitch():
    """basic-pitch's inference module and its ONNX model, loaded once (offline: the model is in the wheel)."""
    logging.getLogger().setLevel(logging.ERROR)  # it warns about every backend it does not find
    with contextlib.redirect_stdout(io.StringIO()):
        from basic_pitch import ICASSP_2022_MODEL_PATH, inference

        return inference, inference.Model(ICASSP_2022_MODEL_PATH)


def transcribe(audio: np.ndarray, rate: int) -> np.ndarray:
    """Notes basic-pitch hears in a clip: [notes, 3] of onset s, offset s, MIDI pitch."""
    import soundfile as sf

    inference, model = _basic_pitch()
    with tempfile.TemporaryDirectory() as folder:  # basic-pitch reads files
        path = Path(folder) / "clip.wav"
        sf.write(path, audio.astype(np.float32), rate, subtype="FLOAT")
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per file
            _, _, events = inference.predict(path, model)
    return np.array([(start, end, pitch) for start, end, pitch, *_ in events], dtype=np.float64).reshape(-1, 3)


def onset_f1(notes: np.ndarray, reference: np.ndarray) -> float:
    """F1 of transcribed notes [n, 3] against reference notes: a note matches a reference note
    of the same pitch (within 50 cents) whose onset is within 50 ms; offsets ignored. Both
    empty: 1; one empty: 0."""
    import mir_eval

    if len(notes) == 0 or len(reference) == 0:
        return float(len(notes) == len(reference))
    hz = lambda n: 440.0 * 2.0 ** ((n[:, 2] - 69) / 12)
    _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        reference[:, :2], hz(reference), notes[:, :2], hz(notes), onset_tolerance=ONSET_TOLERANCE, offset_ratio=None
    )
    return float(f1)


def note_statistics(notes: np.ndarray, seconds: float) -> dict[str, float | None]:
    """Notes [n, 3] (transcribe) of a clip of `seconds` -> notes_per_second, pitch_class_entropy
    (bits; None without notes) and repetition (None under 4 notes)."""
    if len(notes) == 0:
        return {"notes_per_second": 0.0, "pitch_class_entropy": None, "repetition": None}
    pitches = notes[np.argsort(notes[:, 0], kind="stable"), 2].astype(int)
    counts = np.bincount(pitches % 12, minlength=12)
    p = counts[counts > 0] / counts.sum()
    trigrams = [tuple(pitches[i : i + 3]) for i in range(len(pitches) - 2)]
    repeated = [gram in trigrams[:i] for i, gram in enumerate(trigrams)]
    return {
        "notes_per_second": len(notes) / seconds,
        "pitch_class_entropy": float(-(p * np.log2(p)).sum()),
        "repetition": float(np.mean(repeated)) if len(pitches) >= 4 else None,
    }


# ---------------------------------------------------------------- sound


def _stft_magnitude(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    import librosa

    return np.abs(librosa.stft(audio.astype(np.float32), n_fft=n_fft, hop_length=hop, window="hann", center=True))


def noise_floor_db(audio: np.ndarray) -> float | None:
    """Median over sounding frames of the 20th-percentile STFT bin relative to the frame's
    strongest bin, in dB (None for a silent clip)."""
    mag = _stft_magnitude(audio, NOISE_FLOOR_FFT, NOISE_FLOOR_HOP)
    peak = mag.max(axis=0)
    if peak.max() <= 0:
        return None
    sounding = peak > peak.max() * 10 ** (-SOUNDING_DB / 20)
    floor = np.percentile(mag[:, sounding], NOISE_FLOOR_PERCENTILE, axis=0)
    return float(np.median(20 * np.log10(np.maximum(floor, 1e-12) / peak[sounding])))


def lsd(audio: np.ndarray, reference: np.ndarray, rate: int) -> float:
    """Log-spectral distance in dB (ss-vq-vae's definition, see the module docstring)."""
    import librosa

    def spectrum(x: np.ndarray) -> np.ndarray:
        x = x / (np.sqrt(np.mean(x**2)) + np.finfo(np.float32).eps)
        return librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=rate))

    a, b = common(audio, reference)
    return float(np.mean(np.sqrt(np.mean((spectrum(a) - spectrum(b)) ** 2, axis=0))))


def mr_stft_distance(audio: np.ndarray, reference: np.ndarray) -> float:
    """Spectral convergence plus mean log-magnitude L1, averaged over three STFT resolutions."""
    a, b = common(audio, reference)
    total = 0.0
    for n_fft, hop in MR_STFT_RESOLUTIONS:
        ma, mb = _stft_magnitude(a, n_fft, hop), _stft_magnitude(b, n_fft, hop)
        convergence = np.linalg.norm(mb - ma) / max(np.linalg.norm(mb), 1e-8)
        log_l1 = np.mean(np.abs(np.log(np.maximum(ma, 1e-5)) - np.log(np.maximum(mb, 1e-5))))
        total += convergence + log_l1
    return float(total / len(MR_STFT_RESOLUTIONS))


# ---------------------------------------------------------------- envelopes


def loudness_envelope(audio: np.ndarray) -> np.ndarray:
    """RMS per frame (1024 samples, hop 256) in dB, floored ENVELOPE_RANGE_DB below the loudest frame."""
    import librosa

    rms = librosa.feature.rms(y=audio.astype(np.float32), frame_length=ENVELOPE_FRAME, hop_length=ENVELOPE_HOP)[0]
    db = 20 * np.log10(np.maximum(rms, 1e-8))
    return np.maximum(db, db.max() - ENVELOPE_RANGE_DB)


def envelope_correlation(audio: np.ndarray, reference: np.ndarray) -> float | None:
    """Pearson correlation of the loudness envelopes of two clips over their common length
    (None where either envelope is flat: no dynamics to compare)."""
    a, b = (loudness_envelope(x) for x in common(audio, reference))
    if a.std() < 1e-6 or b.std() < 1e-6:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def add_noise(audio: np.ndarray, db: float, seed: int = 0) -> np.ndarray:
    """The clip with white noise `db` dB relative to its RMS: the worse audio a measure of sound
    must tell apart from the clip."""
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    noise = np.random.default_rng(seed).standard_normal(audio.size) * rms * 10 ** (db / 20)
    return np.clip(audio + noise, -1, 1).astype(np.float32)

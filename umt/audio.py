"""Audio in and out: decoding, mono mix, resampling, atomic writing, and mu-law coding.

Everything inside umt is mono float32 in [-1, 1] at the model rate (16 kHz unless a
config says otherwise). This module is the only place that touches audio files.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from umt import DEFAULT_SAMPLE_RATE
from umt.errors import UserError
from umt.fileio import atomic_path

MU = 255  # 8-bit mu-law (256 codes): the encoder's input coding and the default WaveNet output

#: Suffixes we treat as audio when scanning folders (all decoded by libsndfile).
AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64", ".rf64"}
)
_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


class AudioError(UserError):
    """A file that cannot be decoded or written; the message names the file and the reason."""


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")


def audio_files(folder: Path) -> list[Path]:
    """Every audio file under a folder, searched recursively, in name order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_file(p))


def load_audio(path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Decode any file libsndfile reads, mix to mono and resample to `sample_rate`.

    Returns float32 samples clipped to [-1, 1]. Raises AudioError naming the file
    when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({_decode_reason(exc)})") from None
    mono = data.mean(axis=1, dtype=np.float32)
    return np.clip(resample(mono, file_rate, sample_rate), -1.0, 1.0)


def _decode_reason(exc: Exception) -> str:
    reason = getattr(exc, "error_string", None) or str(exc)
    return reason.strip().rstrip(".") or type(exc).__name__


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality band-limited resampling (soxr 'HQ'); a no-op when the rates match."""
    if from_rate == to_rate or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio as 16-bit wav or flac (chosen by suffix), atomically."""
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path}: can only write {', '.join(sorted(_WRITE_FORMATS))} files")
    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(tmp, samples, sample_rate, format=fmt, subtype="PCM_16")


def compand(audio: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """The mu-law curve: float audio in [-1, 1] -> companded values in [-1, 1]."""
    x = audio.clamp(-1.0, 1.0)
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def mu_law_encode(audio: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Float audio in [-1, 1] -> int64 codes 0..2**bits - 1 (rounded to the nearest code)."""
    mu = 2**bits - 1
    return torch.round((compand(audio, mu) + 1.0) * (mu / 2.0)).long()


def mu_law_decode(codes: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Codes 0..2**bits - 1 -> float audio; the exact inverse of mu_law_encode on the codes.

    Code c stands for the companded value 2c/mu - 1, so code 0 is -1.0, the last code is
    +1.0 and decoding never sits half a step off the encoder's grid.
    """
    mu = 2**bits - 1
    companded = codes.float() * (2.0 / mu) - 1.0
    return torch.sign(companded) * torch.expm1(companded.abs() * math.log1p(mu)) / mu

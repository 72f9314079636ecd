"""Audio in and out: decoding, mono mix, resampling, atomic writing, and mu-law coding.

Everything inside umt is mono float32 in [-1, 1] at the model rate (16 kHz unless a
config says otherwise). This module is the only place that touches audio files, and so the
one place that guards them:
  in:  non-finite samples are refused (the file and the time of the first one named), or
       zeroed on request; a DC offset is removed; audio above full scale is scaled down, not clipped;
  out: non-finite audio is never written, and audio above full scale is scaled down.
Each repair is described by a note (a callback), so that a batch job can report it.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable
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
DC_NOTE = 0.01  # an offset larger than this (-40 dBFS) is noted
FULL_SCALE = 1.0
HEADROOM = 10 ** (-0.1 / 20)  # audio above full scale is scaled to peak 0.1 dB below it

Note = Callable[[str], None]


class AudioError(UserError):
    """A file that cannot be decoded or written; the message names the file and the reason."""


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")


def audio_files(folder: Path, unreadable: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Every audio file under a folder, searched recursively, in name order. Entries with an
    audio suffix that are not regular files (a dangling link, a fifo) are listed too, so that
    loading them reports why; folders that cannot be listed go to `unreadable` (path, reason)."""
    found = []

    def refused(exc: OSError) -> None:
        if unreadable is not None:
            unreadable.append((Path(exc.filename), f"cannot list the folder ({exc.strerror})"))

    for root, _, files in os.walk(folder, onerror=refused):  # (links to folders are not followed)
        found += [Path(root) / name for name in files if is_audio_file(Path(name))]
    return sorted(found)


def _unreadable_reason(path: Path) -> str | None:
    """Why `path` cannot be decoded as a file, before opening it (a fifo would block), or None."""
    if path.is_symlink() and not path.exists():
        return f"a dangling symbolic link (to {os.readlink(path)})"
    if not path.exists():
        return "no such file"
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        return "not a regular file (a fifo, socket or device)" if not stat.S_ISDIR(mode) else "a folder, not a file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    return None


def load_audio(path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE, zero_nonfinite: bool = False,
               note: Note | None = None) -> np.ndarray:  # fmt: skip
    """Decode any file libsndfile reads, mix to mono and resample to `sample_rate`.

    Returns float32 samples in [-1, 1], their mean (DC) removed. Raises AudioError naming the file when it
    is missing, unreadable or cannot be decoded, or holds a non-finite sample (NaN or
    infinity; with zero_nonfinite those become 0 and `note` is told). Audio above full scale
    is scaled down to just below it (clipping would distort it), and `note` is told.
    """
    path = Path(path)
    reason = _unreadable_reason(path)
    if reason is not None:
        raise AudioError(f"{path}: {reason}")
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({_decode_reason(exc)})") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc})") from None
    note = note or (lambda text: None)
    bad = ~np.isfinite(data).all(axis=1)
    if bad.any():
        first = int(np.argmax(bad))
        where = f"{bad.sum()} non-finite sample(s) (NaN or infinity), the first at {first / file_rate:.3f} s"
        if not zero_nonfinite:
            raise AudioError(f"{path}: {where} (--zero-nonfinite sets them to 0)")
        data[~np.isfinite(data)] = 0.0
        note(f"{path}: {where}: set to 0")
    mono = resample(data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32), file_rate, sample_rate)
    del data
    return _within_full_scale(remove_dc(mono, path, note), f"{path}: input", note)


def remove_dc(audio: np.ndarray, path: Path | str = "", note: Note | None = None) -> np.ndarray:
    """Audio minus its mean: a DC offset would sound as nothing yet shift every level the
    encoder reads (a constant 0.5 used to translate into a full-scale output)."""
    offset = float(audio.mean(dtype=np.float64)) if audio.size else 0.0
    if abs(offset) > DC_NOTE and note is not None:
        note(f"{path}: a DC offset of {offset:+.3f} removed")
    return (audio - offset).astype(np.float32)


def _within_full_scale(audio: np.ndarray, what: str, note: Note) -> np.ndarray:
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak <= FULL_SCALE:
        return audio.astype(np.float32, copy=False)
    note(f"{what} peaks {20 * math.log10(peak):.1f} dB above full scale: scaled down to fit")
    return (audio * (HEADROOM / peak)).astype(np.float32)


def _decode_reason(exc: Exception) -> str:
    reason = getattr(exc, "error_string", None) or str(exc)
    return reason.strip().rstrip(".") or type(exc).__name__


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality band-limited resampling (soxr 'HQ'); a no-op when the rates match."""
    if from_rate == to_rate or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, note: Note | None = None) -> None:
    """Write mono float audio as 16-bit wav or flac (chosen by suffix), atomically. Refuses
    non-finite audio (AudioError: nothing is written); audio above full scale is scaled down
    to fit, and `note` is told."""
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path}: can only write {', '.join(sorted(_WRITE_FORMATS))} files")
    samples = np.asarray(audio, dtype=np.float32)
    if not np.isfinite(samples).all():
        raise AudioError(f"{path}: not written: the audio holds non-finite samples")
    samples = _within_full_scale(samples, f"{path}: output", note or (lambda text: None))
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

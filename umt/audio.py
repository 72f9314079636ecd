"""Audio in and out: decoding, mono mix, resampling, atomic writing, and mu-law coding.

Everything inside umt is mono float32 in [-1, 1] at the model rate (16 kHz unless a
config says otherwise). This module is the only place that touches audio files, and so the
one place that guards them:
  in:  non-finite samples are refused (the file and the time of the first one named), or
       zeroed on request; a DC offset is removed; audio above full scale is scaled down, not clipped;
  out: non-finite audio is never written, and audio above full scale is scaled down.
Each repair is described by a note (a callback), so that a batch job can report it. Both
ways run a block at a time through anonymous scratch files (open_recording, AudioWriter), so
that memory does not grow with the length of a recording.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr
import torch

from umt import DEFAULT_SAMPLE_RATE
from umt.errors import UserError
from umt.fileio import atomic_path

if TYPE_CHECKING:  # typing.Self is Python 3.11+; annotations are not evaluated (from __future__)
    from typing import Self

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


BLOCK = 1 << 16  # samples decoded, resampled or written at a time: memory does not grow with the recording


def read_padded(start: int, stop: int, size: int, fetch: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """Samples start .. stop - 1 of a signal of `size` samples whose samples lo .. hi - 1 (inside
    it) fetch(lo, hi) returns; zeros outside it."""
    out = np.zeros(max(0, stop - start), dtype=np.float32)
    lo, hi = max(start, 0), min(stop, size)
    if lo < hi:
        out[lo - start : hi - start] = fetch(lo, hi)
    return out


class Recording:
    """A decoded recording at the model rate: mono float32, checked and repaired as described
    above, kept in an anonymous scratch file (gone however the process ends) and read a
    range at a time, so that an hour of audio costs disk, not memory (open_recording)."""

    def __init__(self, path: Path, scratch, samples: int, offset: float, gain: float, rms: float):
        self.path, self.samples, self.rms = path, samples, rms  # rms: of the repaired audio
        self._scratch, self._offset, self._gain = scratch, np.float32(offset), np.float32(gain)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples start .. stop - 1 (default: to the end); zeros outside the recording."""
        stop = self.samples if stop is None else stop
        return read_padded(start, stop, self.samples, self._fetch)

    def _fetch(self, lo: int, hi: int) -> np.ndarray:
        raw = np.frombuffer(os.pread(self._scratch.fileno(), (hi - lo) * 4, lo * 4), dtype=np.float32)
        return (raw - self._offset) * self._gain

    def close(self) -> None:
        self._scratch.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_recording(path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE, zero_nonfinite: bool = False,
                   note: Note | None = None, scratch_folder: Path | None = None) -> Recording:  # fmt: skip
    """Decode any file libsndfile reads, a block at a time: mixed to mono, resampled to
    `sample_rate`, its mean (DC) removed, scaled down to just below full scale if it goes
    beyond (clipping would distort it; `note` is told of both). The decoded audio is held in
    a scratch file in `scratch_folder` (default: the temporary folder, TMPDIR).

    Raises AudioError naming the file when it is missing, unreadable or cannot be decoded, or
    holds a non-finite sample (NaN or infinity; with zero_nonfinite those become 0 and `note`
    is told)."""
    path = Path(path)
    reason = _unreadable_reason(path)
    if reason is not None:
        raise AudioError(f"{path}: {reason}")
    note = note or (lambda text: None)
    scratch = _scratch_file(scratch_folder, path)
    try:
        stats = _decode_into(path, scratch, sample_rate)
    except BaseException:
        scratch.close()
        raise
    if stats.bad:
        where = f"{stats.bad} non-finite sample(s) (NaN or infinity), the first at {stats.first_bad:.3f} s"
        if not zero_nonfinite:
            scratch.close()
            raise AudioError(f"{path}: {where} (--zero-nonfinite sets them to 0)")
        note(f"{path}: {where}: set to 0")
    n = max(stats.samples, 1)
    offset = stats.total / n
    if abs(offset) > DC_NOTE:
        note(f"{path}: a DC offset of {offset:+.3f} removed")
    peak = max(stats.high - offset, offset - stats.low, 0.0) if stats.samples else 0.0
    gain = _fitting_gain(peak, f"{path}: input", note)
    rms = math.sqrt(max(stats.squares / n - offset**2, 0.0)) * gain
    return Recording(path, scratch, stats.samples, offset, gain, rms)


def load_audio(path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE, zero_nonfinite: bool = False,
               note: Note | None = None) -> np.ndarray:  # fmt: skip
    """The whole of open_recording(...) as float32 samples in [-1, 1]."""
    with open_recording(path, sample_rate, zero_nonfinite, note) as recording:
        return recording.read()


@dataclass
class _Stats:
    samples: int = 0  # at the model rate
    total: float = 0.0  # sum, sum of squares, extremes of those samples
    squares: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    bad: int = 0  # non-finite samples in the file
    first_bad: float = 0.0  # seconds

    @property
    def peak(self) -> float:
        """The largest magnitude (0 for no samples)."""
        return max(self.high, -self.low, 0.0)

    def add(self, x: np.ndarray) -> None:
        if x.size:
            self.samples += x.size
            self.total += float(x.sum(dtype=np.float64))
            self.squares += float(np.square(x, dtype=np.float64).sum())
            self.low, self.high = min(self.low, float(x.min())), max(self.high, float(x.max()))


def _decode_into(path: Path, scratch, sample_rate: int) -> _Stats:
    """Decode path into scratch as mono float32 at sample_rate (non-finite samples zeroed and
    counted); the statistics open_recording repairs by."""
    stats = _Stats()
    try:
        with sf.SoundFile(path) as f:
            resampler = _Resampler(f.samplerate, sample_rate)
            done = 0
            for block in f.blocks(BLOCK, dtype="float32", always_2d=True):
                bad = ~np.isfinite(block).all(axis=1)
                if bad.any():
                    if not stats.bad:
                        stats.first_bad = (done + int(np.argmax(bad))) / f.samplerate
                    stats.bad += int(bad.sum())
                    block[~np.isfinite(block)] = 0.0
                done += block.shape[0]
                mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
                _buffer(path, scratch, resampler(mono), stats)
            _buffer(path, scratch, resampler(np.zeros(0, np.float32), last=True), stats)
    except (sf.SoundFileError, RuntimeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({_decode_reason(exc)})") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return stats


def _scratch_file(folder: Path | None, path: Path):
    """An anonymous file (gone however the process ends) in `folder` (default: the temporary
    folder) for the audio of `path`."""
    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryFile(dir=folder)  # its owner closes it
    except OSError as exc:
        where = folder or tempfile.gettempdir()
        raise AudioError(f"{path}: cannot make a scratch file in {where} ({exc.strerror or exc})") from None


def _buffer(path: Path, scratch, x: np.ndarray, stats: _Stats) -> None:
    """_append the decoded audio of `path`; a failed write (a full disk) is an AudioError."""
    try:
        _append(scratch, x, stats)
    except OSError as exc:
        raise AudioError(f"{path}: cannot hold the decoded audio in a scratch file ({exc.strerror or exc})") from None


def _append(scratch, x: np.ndarray, stats: _Stats) -> None:
    stats.add(x)
    scratch.write(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    scratch.flush()  # read back with os.pread, past Python's buffer


class _Resampler:
    """Streaming band-limited resampling (soxr 'HQ', the same output as resampling the whole
    signal at once); a no-op when the rates match."""

    def __init__(self, from_rate: int, to_rate: int):
        self.stream = (
            None if from_rate == to_rate else soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")
        )

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.stream is None:
            return x
        return self.stream.resample_chunk(np.ascontiguousarray(x, dtype=np.float32), last=last)


def _fitting_gain(peak: float, what: str, note: Note) -> float:
    """1, or the gain that brings audio peaking at `peak` just below full scale (noted)."""
    if peak <= FULL_SCALE:
        return 1.0
    note(f"{what} peaks {20 * math.log10(peak):.1f} dB above full scale: scaled down to fit")
    return HEADROOM / peak


def _decode_reason(exc: Exception) -> str:
    reason = getattr(exc, "error_string", None) or str(exc)
    return reason.strip().rstrip(".") or type(exc).__name__


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality band-limited resampling (soxr 'HQ'); a no-op when the rates match."""
    if from_rate == to_rate or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


class AudioWriter:
    """Mono float audio at `sample_rate` written a block at a time as a 16-bit wav or flac
    (chosen by suffix) at `file_rate` (default the same), atomically when closed: the blocks
    go to an anonymous scratch file in the output's folder first, so that audio above full
    scale can be scaled down as a whole (`note` is told), and non-finite audio is refused
    (AudioError: nothing is written)."""

    def __init__(
        self, path: str | os.PathLike, sample_rate: int, file_rate: int | None = None, note: Note | None = None
    ):
        self.path = Path(path)
        self.format = _WRITE_FORMATS.get(self.path.suffix.lower())
        if self.format is None:
            raise AudioError(f"{self.path}: can only write {', '.join(sorted(_WRITE_FORMATS))} files")
        self.file_rate = file_rate or sample_rate
        self.note = note or (lambda text: None)
        self.resampler = _Resampler(sample_rate, self.file_rate)
        self.scratch = _scratch_file(self.path.parent, self.path)  # beside the output: the same disk
        self.given = _Stats()  # of the blocks as given
        self.stats = _Stats()  # of what goes into the file
        self.finite = True

    @property
    def rms(self) -> float:
        """RMS of the audio given so far."""
        return math.sqrt(self.given.squares / self.given.samples) if self.given.samples else 0.0

    def write(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32)
        if not np.isfinite(block).all():
            self.finite = False
        if self.finite:
            self.given.add(block)
            with self._reported():
                _append(self.scratch, self.resampler(block), self.stats)

    def close(self) -> None:
        """Write the file (or raise AudioError and write nothing); the scratch file goes either way."""
        try:
            if not self.finite:
                raise AudioError(f"{self.path}: not written: the audio holds non-finite samples")
            with self._reported():
                _append(self.scratch, self.resampler(np.zeros(0, np.float32), last=True), self.stats)
                gain = np.float32(_fitting_gain(self.stats.peak, f"{self.path}: output", self.note))
                with (
                    atomic_path(self.path) as tmp,
                    sf.SoundFile(tmp, "w", self.file_rate, 1, "PCM_16", format=self.format) as f,
                ):
                    for start in range(0, self.stats.samples, BLOCK):
                        count = min(BLOCK, self.stats.samples - start)
                        f.write(
                            np.frombuffer(os.pread(self.scratch.fileno(), count * 4, start * 4), dtype=np.float32)
                            * gain
                        )
        finally:
            self.scratch.close()

    @contextlib.contextmanager
    def _reported(self) -> Iterator[None]:
        """OSError (a full disk, say) as an AudioError naming the file."""
        try:
            yield
        except (OSError, sf.SoundFileError, RuntimeError) as exc:
            raise AudioError(
                f"{self.path}: cannot write ({getattr(exc, 'strerror', None) or _decode_reason(exc)})"
            ) from None

    def discard(self) -> None:
        self.scratch.close()


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, note: Note | None = None) -> None:
    """Write mono float audio whole (AudioWriter)."""
    writer = AudioWriter(path, sample_rate, note=note)
    writer.write(audio)
    writer.close()


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

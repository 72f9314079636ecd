"""`umt translate`: batch translation of files and folders.

Inputs are files or folders (searched recursively); OUT/<domain>/ mirrors each folder's
tree. Every input is decoded and encoded once, then rendered in every target domain,
several files sharing a decoding batch. Outputs are written atomically and existing ones
are skipped (unless overwrite), so a killed job resumes where it stopped; a file that
cannot be translated is reported and the rest carry on. Several processes may translate
into one OUT at once (a second terminal, shards counted wrongly): each input is claimed
(an advisory lock in OUT/.umt-claims, released when its process ends, however it ends)
before it is translated, and one that another process holds is left to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from umt.audio import AudioWriter, Recording, audio_files, open_recording
from umt.errors import UserError
from umt.fileio import try_lock
from umt.progress import Progress
from umt.translator import Track, Translator


@dataclass(frozen=True)
class Job:
    source: Path
    rel: Path  # output path below OUT/<domain>/, with the output suffix


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs that already existed
    busy: list[Path] = field(default_factory=list)  # inputs another process was translating
    failed: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # repairs of inputs and outputs (umt.audio), loud outputs


def find_jobs(inputs: list[Path], suffix: str, unreadable: list[tuple[Path, str]] | None = None) -> list[Job]:
    """Every audio file named or found under a named folder, with its output path; folders
    that cannot be listed go to `unreadable` (path, reason)."""
    jobs: dict[Path, Job] = {}
    for given in inputs:
        if given.is_dir():
            pairs = [(p, p.relative_to(given)) for p in audio_files(given, unreadable)]
        elif given.exists() or given.is_symlink():  # a dangling link is reported when it is loaded
            pairs = [(given, Path(given.name))]
        else:
            raise UserError(f"{given}: no such file or folder")
        for path, rel in pairs:
            out_rel = rel.with_suffix(suffix)
            if out_rel in jobs:
                raise UserError(f"{path} and {jobs[out_rel].source} would both be written as {out_rel}")
            jobs[out_rel] = Job(path, out_rel)
    return sorted(jobs.values(), key=lambda j: j.rel.as_posix())


def check_output_folder(out: Path, domains: list[str]) -> None:
    """Make OUT and make sure files can be written in OUT/<domain>/, before any work is done."""
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for domain in domains:
            folder = out / domain
            if folder.exists() and not folder.is_dir():
                raise UserError(f"-o {out}: {folder} exists and is not a folder")
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise UserError(f"-o {out}: cannot write there ({exc.strerror or exc})") from None


def parse_shard(text: str) -> tuple[int, int]:
    """'2/8' -> (2, 8): shard 2 of 8, counted from 0."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise UserError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return index, count


def shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """Every count-th job, starting at index: shards 0..count-1 cover each job exactly once."""
    return jobs[index::count]


LOUD_DB = 12.0  # a translation this much louder (RMS) than its input is reported
CLAIMS = ".umt-claims"  # OUT/.umt-claims/<hash>.lock: one advisory lock per input


class Claims:
    """Advisory locks (umt.fileio.try_lock) on inputs, one lock file per output path below
    OUT/<domain>/, removed again when released. (A process that opened a lock file just before
    its holder removed it could claim that input once more: the output would be computed
    twice and written twice, atomically and identically; nothing is lost or mixed.)"""

    def __init__(self, out: Path):
        self.folder = out / CLAIMS
        self.held: dict[Path, int] = {}  # lock file -> its descriptor

    def take(self, job: Job) -> bool:
        """Claim job's outputs for this process; False when another process holds them."""
        while True:
            self.folder.mkdir(exist_ok=True)
            try:
                path = self.folder / (hashlib.sha1(job.rel.as_posix().encode()).hexdigest() + ".lock")
                fd = try_lock(path)
                break
            except FileNotFoundError:  # another process removed the folder just now
                continue
        if fd is not None:
            self.held[path] = fd
        return fd is not None

    def release_all(self) -> None:
        for path, fd in self.held.items():
            path.unlink(missing_ok=True)  # before the lock goes: no one claims a removed file
            os.close(fd)  # closing the file releases its lock
        self.held.clear()
        with contextlib.suppress(OSError):  # the last one out removes the folder
            self.folder.rmdir()


def convert(
    translator: Translator,
    jobs: list[Job],
    domains: list[str],
    out: Path,
    overwrite: bool = False,
    sample_rate: int | None = None,
    zero_nonfinite: bool = False,
    listener: Callable[[float], None] | None = None,
) -> Report:
    """Translate every job into every domain (outputs at sample_rate, default the model's);
    `listener`, if given, hears the share of the samples generated so far (0..1) as it grows.

    A recording is read, rendered and written a span at a time (Translator.spans), so memory
    does not grow with its length; several short ones share each span's decoding batch."""
    report = Report()
    rate = translator.model.cfg.sample_rate
    todo = []
    for job in jobs:
        missing = _missing(job, domains, out, overwrite)
        report.skipped += [out / d / job.rel for d in domains if d not in missing]
        if missing:
            todo.append((job, missing))

    claims = Claims(out)
    sizes = [estimated_samples(job.source, rate) for job, _ in todo]  # read once: the progress total and the batching
    samples = sum(size * len(missing) for size, (_, missing) in zip(sizes, todo))
    with (
        Progress(len(todo), "files", "file") as files,
        Progress(samples, "generating", "sample", position=1) as generated,
    ):

        def on_samples(n: int) -> None:
            generated.update(n)
            if listener is not None:
                listener(min(1.0, generated.done / max(samples, 1)))

        for group in _groups(todo, sizes, translator):
            with contextlib.ExitStack() as stack:
                stack.callback(claims.release_all)
                entries = []
                for job, _ in group:
                    entry = _open(job, domains, out, overwrite, claims, zero_nonfinite, translator, report)
                    if entry is None:
                        files.update()
                        continue
                    stack.callback(entry.close)
                    entry.encode(0, translator)  # (a one-span recording is closed at once: few files open at a time)
                    entries.append(entry)
                for r in range(max((len(e.spans) for e in entries), default=0)):
                    now = [e for e in entries if r < len(e.spans) and e.alive]
                    if r > 0:
                        for e in now:
                            e.encode(r, translator)
                    for domain in domains:
                        wanted = [e for e in now if domain in e.missing and e.alive]
                        if not wanted:
                            continue
                        rendered = translator.render(
                            [e.tracks[domain] for e in wanted], [e.spans[r] for e in wanted],
                            [e.latent for e in wanted], domain, on_samples,
                        )  # fmt: skip
                        for e, audio in zip(wanted, rendered):
                            e.write(domain, audio, sample_rate or rate, r == len(e.spans) - 1)
                files.update(len(entries))
    return report


class _Entry:
    """One input being translated: its recording, spans, the latent of the span at hand, and
    per domain its track and writer."""

    def __init__(self, job: Job, missing: list[str], recording: Recording, translator: Translator, out: Path,
                 report: Report):  # fmt: skip
        self.job, self.missing, self.recording, self.out, self.report = job, missing, recording, out, report
        self.rate = translator.model.cfg.sample_rate
        self.spans = translator.spans(recording.samples)
        self.tracks = {d: Track(job.rel.as_posix(), recording.samples) for d in missing}
        self.writers: dict[str, AudioWriter] = {}
        self.latent: torch.Tensor | None = None
        self.failed = False

    @property
    def alive(self) -> bool:
        """Whether some domain is still to be written."""
        return not self.failed and bool(self.missing)

    def encode(self, r: int, translator: Translator) -> None:
        """The latent of span r; the recording is closed after its last span."""
        try:
            self.latent = translator.encode(self.recording, self.spans[r].lo, self.spans[r].hi)
        except UserError as exc:
            self.fail(str(exc))
        if r == len(self.spans) - 1:
            self.recording.close()

    def fail(self, reason: str, domain: str | None = None) -> None:
        """Report a failure of the whole input, or of its translation into one domain."""
        self.report.failed.append((self.job.source, reason if domain is None else f"into {domain}: {reason}"))
        if domain is None:
            self.failed = True
        else:
            self.missing.remove(domain)

    def write(self, domain: str, audio: np.ndarray, file_rate: int, last: bool) -> None:
        """Hand a span's audio in `domain` to its writer; the last span writes the file."""
        path = self.out / domain / self.job.rel
        try:
            if domain not in self.writers:
                self.writers[domain] = AudioWriter(path, self.rate, file_rate, self.report.notes.append)
            writer = self.writers[domain]
            writer.write(audio)
            if last:
                del self.writers[domain]
                writer.close()
                self.report.written.append(path)
                _note_loudness(path, writer.rms, self.recording.rms, self.report.notes)
        except UserError as exc:
            if domain in self.writers:
                self.writers.pop(domain).discard()
            self.fail(str(exc).removeprefix(f"{path}: "), domain)

    def close(self) -> None:
        for writer in self.writers.values():  # unfinished (an interrupted run): nothing is written
            writer.discard()
        self.recording.close()


def _open(job: Job, domains: list[str], out: Path, overwrite: bool, claims: Claims, zero_nonfinite: bool,
          translator: Translator, report: Report) -> _Entry | None:  # fmt: skip
    """Claim a job and open its recording; None (and the report says why) when another
    process holds it, another process has meanwhile finished it, or it cannot be read."""
    if not claims.take(job):
        report.busy.append(job.source)
        return None
    missing = _missing(job, domains, out, overwrite)  # another process may have finished it meanwhile
    report.skipped += [out / d / job.rel for d in domains if d not in missing]
    if not missing:
        return None
    try:
        recording = open_recording(
            job.source, translator.model.cfg.sample_rate, zero_nonfinite, report.notes.append, scratch_folder=out
        )
    except UserError as exc:
        report.failed.append((job.source, str(exc).removeprefix(f"{job.source}: ")))
        return None
    try:
        return _Entry(job, missing, recording, translator, out, report)
    except UserError as exc:
        recording.close()
        report.failed.append((job.source, str(exc)))
        return None


def _missing(job: Job, domains: list[str], out: Path, overwrite: bool) -> list[str]:
    """The domains job still has to be translated into."""
    return [d for d in domains if overwrite or not (out / d / job.rel).exists()]


def _note_loudness(path: Path, out_rms: float, in_rms: float, notes: list[str]) -> None:
    """Note a translation more than LOUD_DB louder (RMS) than its input."""
    if out_rms > in_rms * 10 ** (LOUD_DB / 20):
        gain = (f"{20 * math.log10(out_rms):.1f} dBFS (RMS) from a silent input" if in_rms == 0
                else f"{20 * math.log10(out_rms / in_rms):.1f} dB louder than its input")  # fmt: skip
        notes.append(f"{path}: {gain}")


def _groups(todo: list, sizes: list[int], translator: Translator):
    """Consecutive files (of estimated sizes in samples) whose chunks together fill about one
    decoding batch (a long file alone): enough to keep the batch full, few enough to bound memory."""
    group: list = []
    chunks = 0
    per_chunk = translator.chunk_frames * translator.pool
    for entry, size in zip(todo, sizes):
        group.append(entry)
        chunks += max(1, -(-size // per_chunk))
        if chunks >= translator.batch_size:
            yield group
            group, chunks = [], 0
    if group:
        yield group


def estimated_samples(path: Path, rate: int) -> int:
    """A file's length in samples at `rate`, from its header without decoding it (0: unknown)."""
    import soundfile as sf

    if not path.is_file():  # a fifo would block; a dangling link is reported when it is loaded
        return 0
    try:
        info = sf.info(path)
        return int(info.frames * rate / info.samplerate)
    except (sf.SoundFileError, RuntimeError, OSError):  # unreadable: reported when it is loaded
        return 0


def summary(report: Report) -> str:
    lines = [f"wrote {len(report.written)} file(s), skipped {len(report.skipped)} existing (use --overwrite to redo)"]
    if report.busy:
        lines.append(f"left {len(report.busy)} input(s) to another umt translate writing into the same folder")
    if report.notes:
        lines.append(f"{len(report.notes)} note(s):")
        lines += [f"  {text}" for text in report.notes]
    if report.failed:
        lines.append(f"{len(report.failed)} input(s) failed:")
        lines += [f"  {path}: {reason}" for path, reason in report.failed]
    return "\n".join(lines)

"""`umt prepare SRC OUT`: decode a folder of domains into memory-mappable int16 arrays.

SRC holds one folder per domain with audio at any depth. Each file becomes
OUT/<domain>/<relative path>.npy at the model rate, and OUT/manifest.json records
durations and a deterministic train/val/test split (by piece when SRC is paired).
Re-running only converts files that are new or changed since the last run.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from umt.audio import AudioError, audio_files, load_audio
from umt.data.manifest import MANIFEST_NAME, FileEntry, Manifest, assign_splits, read_pairing
from umt.errors import UserError
from umt.fileio import atomic_path, locked

SILENCE_PEAK = 1e-3  # -60 dBFS: quieter than this is treated as silence
CHECKPOINT_SECONDS = 5.0  # how often the manifest is saved while working
LOCK_NAME = ".umt-prepare.lock"  # one `umt prepare` at a time writes into a folder


@dataclass(frozen=True)
class Job:
    domain: str
    source: Path  # absolute
    rel: str  # relative to SRC, posix
    out_rel: str  # relative to OUT


@dataclass(frozen=True)
class Result:
    job: Job
    samples: int = 0
    reason: str | None = None  # set when the file was skipped


def prepare(
    source: Path,
    out: Path,
    sample_rate: int,
    split_fractions: dict[str, float],
    seed: int = 0,
    min_seconds: float = 1.0,
    jobs: int = 1,
) -> Manifest:
    """Convert every audio file under `source` and return the manifest written to `out`.
    Another `umt prepare` into the same `out` is waited for, then its work is reused."""
    domains = find_domains(source)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out}: cannot write there ({exc.strerror or exc})") from None
    waiting = lambda: print(f"waiting for another umt prepare writing into {out}", flush=True)
    with locked(out / LOCK_NAME, waiting):
        return _prepare(source, out, domains, sample_rate, split_fractions, seed, min_seconds, jobs)


def _prepare(source: Path, out: Path, domains: list[str], sample_rate: int, split_fractions: dict[str, float], seed: int,
             min_seconds: float, jobs: int) -> Manifest:  # fmt: skip
    pieces = read_pairing(source)
    previous = _previous_entries(out, sample_rate)
    manifest = Manifest(sample_rate, seed, split_fractions, domains=domains, paired=pieces is not None)

    todo: list[Job] = []
    taken: dict[str, str] = {}  # out_rel -> the source that claimed it
    unreadable: list[tuple[Path, str]] = []
    for domain in domains:
        for path in audio_files(source / domain, unreadable):
            rel = path.relative_to(source).as_posix()
            out_rel = str(Path(rel).with_suffix(".npy").as_posix())
            if out_rel in taken:
                manifest.skipped.append({"source": rel, "reason": f"same name as {taken[out_rel]}"})
                continue
            taken[out_rel] = rel
            job = Job(domain, path, rel, out_rel)
            reused = _reusable(previous.get(rel), job, out)
            if reused:
                manifest.files.append(reused)
            else:
                todo.append(job)

    manifest.skipped += [
        {"source": path.relative_to(source).as_posix(), "reason": reason} for path, reason in unreadable
    ]
    last_save = time.monotonic()
    with tqdm(total=len(todo), desc="prepare", unit="file", disable=None) as bar:
        for result in _run(todo, sample_rate, min_seconds, out, jobs):
            bar.update()
            if result.reason is not None:
                manifest.skipped.append({"source": result.job.rel, "reason": result.reason})
            else:
                manifest.files.append(_entry(result, pieces))
            if time.monotonic() - last_save > CHECKPOINT_SECONDS:
                _save(manifest, out, pieces)  # a killed run keeps what it has done
                last_save = time.monotonic()

    manifest.files.sort(key=lambda f: f.source)
    manifest.skipped.sort(key=lambda s: s["source"])
    _save(manifest, out, pieces)
    manifest.root = out
    return manifest


def find_domains(source: Path) -> list[str]:
    if not source.is_dir():
        raise UserError(f"{source}: not a folder")
    domains = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not domains:
        raise UserError(f"{source}: no domain folders (expected one subfolder per domain, e.g. {source}/piano/)")
    return domains


def _previous_entries(out: Path, sample_rate: int) -> dict[str, FileEntry]:
    if not (out / MANIFEST_NAME).is_file():
        return {}
    old = Manifest.read(out)
    if old.sample_rate != sample_rate:
        raise UserError(
            f"{out}: prepared at {old.sample_rate} Hz, not {sample_rate} Hz; use another folder or --sample-rate {old.sample_rate}"
        )
    return {f.source: f for f in old.files}


def _reusable(entry: FileEntry | None, job: Job, out: Path) -> FileEntry | None:
    """The previous run's entry, if the source is unchanged and its array is still there."""
    if entry is None or entry.path != job.out_rel or not (out / entry.path).is_file() or not job.source.is_file():
        return None
    stat = job.source.stat()
    if (entry.source_size, entry.source_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        return None
    return entry


def _run(todo: list[Job], sample_rate: int, min_seconds: float, out: Path, jobs: int):
    args = [(job, sample_rate, min_seconds, out) for job in todo]
    if jobs <= 1 or len(todo) <= 1:
        yield from (_convert(*a) for a in args)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_convert, *zip(*args), chunksize=4)


def _convert(job: Job, sample_rate: int, min_seconds: float, out: Path) -> Result:
    """Decode one file and store it as int16, or say why it was skipped."""
    try:
        audio = load_audio(job.source, sample_rate)
    except AudioError as exc:
        return Result(job, reason=str(exc).split(": ", 1)[-1])
    if audio.size == 0:
        return Result(job, reason="empty (no samples)")
    if audio.size < min_seconds * sample_rate:
        return Result(job, reason=f"too short ({audio.size / sample_rate:.2f} s < {min_seconds:g} s)")
    peak = float(np.abs(audio).max())
    if peak < SILENCE_PEAK:
        return Result(job, reason=f"silent (peak {20 * np.log10(max(peak, 1e-10)):.0f} dBFS)")
    pcm = np.round(audio * 32767.0).astype(np.int16)
    with atomic_path(out / job.out_rel) as tmp, open(tmp, "wb") as fh:
        np.save(fh, pcm)
    return Result(job, samples=int(pcm.size))


def _entry(result: Result, pieces: set[str] | None) -> FileEntry:
    job = result.job
    stat = job.source.stat()
    in_domain = Path(job.rel).relative_to(job.domain).with_suffix("").as_posix()
    return FileEntry(
        domain=job.domain,
        source=job.rel,
        path=job.out_rel,
        samples=result.samples,
        split="train",  # assigned in _save
        source_size=stat.st_size,
        source_mtime_ns=stat.st_mtime_ns,
        piece=in_domain if pieces is not None and in_domain in pieces else None,
    )


def _save(manifest: Manifest, out: Path, pieces: set[str] | None) -> None:
    """Assign splits (paired pieces across all domains, other files per domain) and write."""
    fractions, seed = manifest.split_fractions, manifest.seed
    by_piece = assign_splits((f.piece for f in manifest.files if f.piece), fractions, seed)
    for domain in {f.domain for f in manifest.files}:
        loose = [f for f in manifest.files if f.domain == domain and not f.piece]
        by_file = assign_splits((f.source for f in loose), fractions, seed)
        for f in loose:
            f.split = by_file[f.source]
    for f in manifest.files:
        if f.piece:
            f.split = by_piece[f.piece]
    manifest.save(out)


def format_table(manifest: Manifest) -> str:
    """A per-domain summary: files, minutes per split, skipped files."""
    header = f"{'domain':<20} {'files':>6} {'train min':>10} {'val min':>8} {'test min':>9} {'skipped':>8}"
    lines = [header, "-" * len(header)]
    for d, t in manifest.totals().items():
        sec = t["seconds"]
        lines.append(
            f"{d:<20} {t['files']:>6} {sec['train'] / 60:>10.2f} {sec['val'] / 60:>8.2f} {sec['test'] / 60:>9.2f} {t['skipped']:>8}"
        )
    return "\n".join(lines)


def default_jobs() -> int:
    return max(1, min(8, os.cpu_count() or 1))

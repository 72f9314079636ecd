"""`umt translate`: batch translation of files and folders.

Inputs are files or folders (searched recursively); OUT/<domain>/ mirrors each folder's
tree. Every input is decoded and encoded once, then rendered in every target domain,
several files sharing a decoding batch. Outputs are written atomically and existing ones
are skipped (unless overwrite), so a killed job resumes where it stopped; a file that
cannot be translated is reported and the rest carry on.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from umt.audio import audio_files, load_audio, resample, write_audio
from umt.errors import UserError
from umt.progress import Progress
from umt.translator import Translator


@dataclass(frozen=True)
class Job:
    source: Path
    rel: Path  # output path below OUT/<domain>/, with the output suffix


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs that already existed
    failed: list[tuple[Path, str]] = field(default_factory=list)


def find_jobs(inputs: list[Path], suffix: str) -> list[Job]:
    """Every audio file named or found under a named folder, with its output path."""
    jobs: dict[Path, Job] = {}
    for given in inputs:
        if given.is_dir():
            pairs = [(p, p.relative_to(given)) for p in audio_files(given)]
        elif given.exists():
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


def convert(
    translator: Translator,
    jobs: list[Job],
    domains: list[str],
    out: Path,
    overwrite: bool = False,
    sample_rate: int | None = None,
) -> Report:
    """Translate every job into every domain (outputs at sample_rate, default the model's)."""
    report = Report()
    rate = translator.model.cfg.sample_rate
    out_rate = sample_rate or rate
    todo = []
    for job in jobs:
        targets = {d: out / d / job.rel for d in domains}
        missing = [d for d, path in targets.items() if overwrite or not path.exists()]
        report.skipped += [targets[d] for d in domains if d not in missing]
        if missing:
            todo.append((job, missing))

    sizes = [_estimated_samples(job.source, rate) for job, _ in todo]  # read once: the progress total and the batching
    samples = sum(size * len(missing) for size, (_, missing) in zip(sizes, todo))
    with Progress(len(todo), "files", "file") as files, Progress(samples, "generating", "sample", position=1) as generated:
        for group in _groups(todo, sizes, translator):
            loaded = []
            for job, missing in group:
                try:
                    audio = load_audio(job.source, rate)
                    loaded.append((job, missing, audio, translator.encode(audio)))
                except UserError as exc:
                    report.failed.append((job.source, str(exc).removeprefix(f"{job.source}: ")))
                    files.update()
            for domain in domains:
                wanted = [entry for entry in loaded if domain in entry[1]]
                if not wanted:
                    continue
                rendered = translator.decode(
                    [e[3] for e in wanted], [e[2].size for e in wanted], domain, [e[0].rel.as_posix() for e in wanted],
                    progress=generated.update,
                )  # fmt: skip
                for (job, _, _, _), audio in zip(wanted, rendered):
                    path = out / domain / job.rel
                    write_audio(path, resample(audio, rate, out_rate), out_rate)
                    report.written.append(path)
            files.update(len(loaded))
    return report


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


def _estimated_samples(path: Path, rate: int) -> int:
    import soundfile as sf

    try:
        info = sf.info(path)
        return int(info.frames * rate / info.samplerate)
    except (sf.SoundFileError, RuntimeError, OSError):  # unreadable: reported when it is loaded
        return 0


def summary(report: Report) -> str:
    lines = [f"wrote {len(report.written)} file(s), skipped {len(report.skipped)} existing (use --overwrite to redo)"]
    if report.failed:
        lines.append(f"{len(report.failed)} input(s) failed:")
        lines += [f"  {path}: {reason}" for path, reason in report.failed]
    return "\n".join(lines)

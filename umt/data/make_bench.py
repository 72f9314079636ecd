"""`umt make-bench OUT`: render a paired benchmark corpus from music21's bundled scores.

Every chosen piece is rendered through a General-MIDI soundfont (by default TimGM6mb.sf2,
which ships with pretty_midi; --soundfont takes any other .sf2) once per instrument, so
OUT/<domain>/<piece>.flac holds the same notes, timing and dynamics in every domain: ground
truth for translation. The same settings with another soundfont give the same notes played by
other samples of each instrument: audio to train a judge that hears instruments, not a
soundfont, and to test a model on instruments it never heard. Each
piece gets a light seeded variation (tempo, transposition, velocity) that is shared by
all domains; each instrument then plays it in the octave that best fits its range
(octave moves keep the chroma, so pairs stay comparable).
"""

from __future__ import annotations

import functools
import json
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from umt.audio import resample, write_audio
from umt.data.instruments import INSTRUMENTS, Instrument
from umt.data.manifest import PAIRING_NAME
from umt.errors import UserError
from umt.fileio import write_json

DEFAULT_CORPUS = "bach-chorales"
RENDER_RATE = 44100  # the synth runs at CD rate; soxr brings it down to --sample-rate
TAIL_SECONDS = 0.5  # room for the last notes' release
MIN_PIECE_SECONDS = 1.0
PEAK = 10 ** (-1 / 20)  # every file is normalised to a -1 dBFS peak
DRUM_CHANNEL = 9  # MIDI channel 10
KICK, SNARE, CLOSED_HAT, RIDE = 36, 38, 42, 51

# A note or drum hit: start and end in seconds, MIDI key, velocity.
NOTE_DTYPE = np.dtype([("start", "f8"), ("end", "f8"), ("key", "i4"), ("velocity", "i4")])


@dataclass
class Piece:
    name: str
    source: str  # path inside music21's corpus
    seconds: float
    tempo_bpm: float
    transpose: int  # semitones, shared by every domain
    velocity: int  # base velocity
    notes: np.ndarray  # NOTE_DTYPE, already transposed
    drums: np.ndarray  # NOTE_DTYPE, empty without --with-drums

    def truncated(self, seconds: float) -> Piece:
        """The first `seconds` of the piece: later notes dropped, sounding ones cut."""
        if seconds >= self.seconds:
            return self
        return replace(self, seconds=seconds, notes=_cut(self.notes, seconds), drums=_cut(self.drums, seconds))

    def info(self) -> dict:
        """What pairing.json records about the piece."""
        return {
            "name": self.name,
            "source": self.source,
            "seconds": round(self.seconds, 3),
            "tempo_bpm": self.tempo_bpm,
            "transpose": self.transpose,
            "velocity": self.velocity,
        }


def _cut(notes: np.ndarray, seconds: float) -> np.ndarray:
    kept = notes[notes["start"] < seconds].copy()
    kept["end"] = np.minimum(kept["end"], seconds)
    return kept


@dataclass(frozen=True)
class Settings:
    """Everything that determines the rendered audio, apart from the list of domains."""

    corpus: str
    minutes: float
    sample_rate: int
    seed: int
    clip_seconds: float
    with_drums: bool
    # "" for the corpus itself; a trait of TRAITS renders every piece twice, with the trait
    # (OUT/with/<domain>/) and without it (OUT/without/<domain>/), for `umt probe train`
    trait: str = ""
    soundfont: str = ""  # path of the .sf2; "" = pretty_midi's TimGM6mb.sf2


# ---------------------------------------------------------------- trait pairs (SMITIN probes)

TRAITS = {
    "register": "with: an octave higher",
    "articulation": "with: staccato (each note a third of its length, at least 60 ms); without: as written",
    "density": "with: every voice; without: the outer voices only (the highest and lowest sounding notes)",
}
SIDES = ("with", "without")


def with_trait(notes: np.ndarray, trait: str, side: str) -> np.ndarray:
    """The notes (already in the instrument's range) as played on one side of a trait pair."""
    notes = notes.copy()
    if trait == "register" and side == "with":
        notes["key"] += 12
    elif trait == "articulation" and side == "with":
        length = notes["end"] - notes["start"]
        notes["end"] = notes["start"] + np.minimum(length, np.maximum(0.06, length / 3))
    elif trait == "density" and side == "without":
        sounding = (notes["start"][None, :] <= notes["start"][:, None]) & (
            notes["end"][None, :] > notes["start"][:, None]
        )
        keys = np.where(sounding, notes["key"][None, :], -1)
        highest = keys.max(axis=1)
        lowest = np.where(sounding, notes["key"][None, :], 1000).min(axis=1)
        notes = notes[(notes["key"] == highest) | (notes["key"] == lowest)]
    return notes


# ---------------------------------------------------------------- choosing pieces


def corpus_sources(corpus: str) -> list[str]:
    """Paths (inside music21's corpus) of every piece of a collection, sorted."""
    from music21 import corpus as m21corpus

    root = _corpus_root()
    if corpus == DEFAULT_CORPUS:  # the chorale iterator names works without a suffix; take the MusicXML file
        names = m21corpus.chorales.Iterator(returnType="filename")
        works = [root / f"{name}.mxl" for name in names if (root / f"{name}.mxl").is_file()]
    else:
        works = m21corpus.getComposer(corpus)
    sources = sorted({Path(w).relative_to(root).as_posix() for w in works})
    if not sources:
        raise UserError(
            f"--corpus {corpus}: music21's corpus has nothing by that name "
            f"(try {DEFAULT_CORPUS}, bach, beethoven, mozart, haydn, monteverdi, josquin, palestrina)"
        )
    return sources


def _corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def piece_name(source: str) -> str:
    """'bach/bwv269.mxl' -> 'bwv269'; 'mozart/k155/movement1.mxl' -> 'k155-movement1'."""
    parts = Path(source).with_suffix("").parts
    return "-".join(parts[1:]) if len(parts) > 1 else parts[0]


def piece_rng(seed: int, name: str) -> np.random.Generator:
    """A generator that depends only on the seed and the piece, not on which others were chosen."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def read_piece(source: str, seed: int, clip_seconds: float, with_drums: bool) -> Piece | None:
    """Parse a score and turn it into timed notes with the piece's seeded variation."""
    from music21 import converter, stream

    name = piece_name(source)
    rng = piece_rng(seed, name)
    tempo = float(rng.uniform(72, 112))  # quarter notes per minute
    transpose = int(rng.integers(-3, 4))
    velocity = int(rng.integers(70, 106))
    sec_per_quarter = 60.0 / tempo

    score = converter.parse(_corpus_root() / source)
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    score = score.stripTies()
    rows = []
    for element in score.flatten().notes:
        start = float(element.offset) * sec_per_quarter
        end = start + float(element.quarterLength) * sec_per_quarter
        if end <= start or start >= clip_seconds:
            continue  # grace notes, or past the clip
        for pitch in element.pitches:
            jitter = int(rng.integers(-8, 9))
            rows.append((start, min(end, clip_seconds), pitch.midi + transpose, np.clip(velocity + jitter, 1, 127)))
    if not rows:
        return None
    notes = np.array(rows, dtype=NOTE_DTYPE)
    seconds = float(notes["end"].max())
    drums = _drum_part(score, sec_per_quarter, seconds, rng) if with_drums else np.zeros(0, NOTE_DTYPE)
    return Piece(name, source, seconds, round(tempo, 2), transpose, velocity, notes, drums)


def _drum_part(score, sec_per_quarter: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A seeded GM drum groove on the score's bar grid: kick, snare on the off-beats, hats or ride."""
    from music21 import meter

    signatures = score.recurse().getElementsByClass(meter.TimeSignature)
    bar = float(signatures[0].barDuration.quarterLength) if signatures else 4.0
    first_bar = score.parts[0].measure(1) if score.parts else None
    downbeat = float(first_bar.offset) if first_bar is not None else 0.0  # after a pickup bar
    hat_key = int(rng.choice([CLOSED_HAT, RIDE]))
    hat_step = float(rng.choice([0.5, 1.0]))
    loudness = int(rng.integers(80, 111))
    beats = max(1, round(bar))

    hits = []
    t = downbeat - bar if downbeat > 0 else 0.0
    while t * sec_per_quarter < seconds:
        for beat in range(beats):
            if beat == 0 or (beat == 2 and beats >= 4):
                hits.append((t + beat, KICK))
            elif beat % 2 == 1:
                hits.append((t + beat, SNARE))
        hits += [(t + h, hat_key) for h in np.arange(0.0, bar, hat_step)]
        t += bar
    rows = [
        (q * sec_per_quarter, q * sec_per_quarter + 0.1, key, np.clip(loudness + int(rng.integers(-10, 11)), 1, 127))
        for q, key in hits
        if 0 <= q * sec_per_quarter < seconds
    ]
    return np.array(sorted(rows), dtype=NOTE_DTYPE)


def choose_pieces(settings: Settings, jobs: int) -> list[Piece]:
    """Pieces in a seeded order until `minutes` are filled; the last one is cut to fit."""
    sources = corpus_sources(settings.corpus)
    order = [sources[i] for i in np.random.default_rng(settings.seed).permutation(len(sources))]
    target = settings.minutes * 60.0
    chosen: list[Piece] = []
    total = 0.0
    read = functools.partial(
        read_piece, seed=settings.seed, clip_seconds=settings.clip_seconds, with_drums=settings.with_drums
    )
    batch = max(2, 2 * jobs)
    with ProcessPoolExecutor(max_workers=jobs) as pool, tqdm(desc="reading scores", unit="piece", disable=None) as bar:
        for i in range(0, len(order), batch):
            for piece in pool.map(read, order[i : i + batch]):
                bar.update()
                remaining = target - total
                if piece is None or remaining < MIN_PIECE_SECONDS:
                    continue
                piece = piece.truncated(remaining)
                chosen.append(piece)
                total += piece.seconds
            if target - total < MIN_PIECE_SECONDS:
                break
    if target - total >= MIN_PIECE_SECONDS:
        tqdm.write(f"make-bench: the {settings.corpus} corpus holds only {total / 60:.1f} minutes; using all of it")
    return chosen


# ---------------------------------------------------------------- rendering


def place_in_range(notes: np.ndarray, instrument: Instrument) -> np.ndarray:
    """Move the whole piece by the octave that keeps most notes in the instrument's range,
    fold the rest in by octaves, and shorten notes that now overlap on the same key."""
    keys = notes["key"]
    best = max(
        range(-4, 5),
        key=lambda k: (np.sum((keys + 12 * k >= instrument.low) & (keys + 12 * k <= instrument.high)), -abs(k)),
    )
    placed = notes.copy()
    placed["key"] = keys + 12 * best
    while np.any(low := placed["key"] < instrument.low):
        placed["key"][low] += 12
    while np.any(high := placed["key"] > instrument.high):
        placed["key"][high] -= 12
    return _split_overlaps(placed)


def _split_overlaps(notes: np.ndarray) -> np.ndarray:
    """Two notes on one key at once would share a synth voice: end the first where the next starts."""
    notes = np.sort(notes, order=["key", "start"])
    same_key = notes["key"][:-1] == notes["key"][1:]
    overlapping = same_key & (notes["end"][:-1] > notes["start"][1:])
    notes["end"][:-1][overlapping] = notes["start"][1:][overlapping]
    return notes[notes["end"] > notes["start"]]


def default_soundfont() -> Path:
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@functools.lru_cache(maxsize=1)
def _soundfont_bytes(path: str) -> bytes:
    return Path(path or default_soundfont()).read_bytes()


def check_soundfont(path: str) -> None:
    """Refuse a soundfont file that is missing or that the synthesiser cannot read."""
    import tinysoundfont

    if not Path(path).is_file():
        raise UserError(f"--soundfont {path}: no such file")
    try:
        tinysoundfont.Synth(samplerate=RENDER_RATE).sfload(_soundfont_bytes(path))
    except Exception as exc:  # noqa: BLE001 (the binding raises plain Exceptions for unreadable files)
        raise UserError(f"--soundfont {path}: not a soundfont the synthesiser reads ({exc})") from None


def render(
    piece: Piece, instrument: Instrument, sample_rate: int, trait: str = "", side: str = "", soundfont: str = ""
) -> np.ndarray:
    """Synthesise the piece on one instrument: mono float32 at `sample_rate`, -1 dBFS peak
    (one side of a trait pair, if a trait is given), through `soundfont` ("" = TimGM6mb)."""
    try:
        import tinysoundfont
    except ImportError:
        raise UserError("make-bench needs tinysoundfont: pip install --no-deps tinysoundfont") from None

    synth = tinysoundfont.Synth(samplerate=RENDER_RATE)
    font = synth.sfload(_soundfont_bytes(soundfont))
    synth.program_select(0, font, 0, instrument.program)
    if len(piece.drums):
        synth.program_select(DRUM_CHANNEL, font, 128, 0, True)

    events = []  # (sample, on?, channel, key, velocity); note-offs sort before note-ons
    placed = place_in_range(piece.notes, instrument)
    if trait:
        placed = with_trait(placed, trait, side)
    for channel, notes in ((0, placed), (DRUM_CHANNEL, piece.drums)):
        for start, end, key, velocity in notes.tolist():
            events.append((round(start * RENDER_RATE), 1, channel, key, velocity))
            events.append((round(end * RENDER_RATE), 0, channel, key, 0))
    events.sort()

    total = round((piece.seconds + TAIL_SECONDS) * RENDER_RATE)
    chunks, now = [], 0
    for sample, on, channel, key, velocity in events:
        if sample > now:
            chunks.append(np.frombuffer(synth.generate(sample - now), dtype=np.float32).copy())
            now = sample
        if on:
            synth.noteon(channel, key, velocity)
        else:
            synth.noteoff(channel, key)
    chunks.append(np.frombuffer(synth.generate(total - now), dtype=np.float32).copy())
    stereo = np.concatenate(chunks).reshape(-1, 2)
    audio = resample(stereo.mean(axis=1), RENDER_RATE, sample_rate)
    peak = float(np.abs(audio).max())
    return audio * (PEAK / peak) if peak > 0 else audio


def _render_file(
    piece: Piece, domain: str, path: Path, sample_rate: int, trait: str, side: str, soundfont: str
) -> None:
    write_audio(path, render(piece, INSTRUMENTS[domain], sample_rate, trait, side, soundfont), sample_rate)


# ---------------------------------------------------------------- the command


def make_bench(out: Path, domains: list[str], settings: Settings, jobs: int = 1) -> dict:
    """Render (or finish rendering) the corpus into `out`; returns what pairing.json holds."""
    pairing_path = out / PAIRING_NAME
    earlier_domains: list[str] = []
    if pairing_path.is_file():  # finish an interrupted run, or add domains to a finished one
        previous = json.loads(pairing_path.read_text())
        if {"trait": "", "soundfont": "", **previous.get("settings", {})} != asdict(
            settings
        ):  # older corpora lack these
            raise UserError(
                f"{out}: holds a corpus made with other settings {previous.get('settings')}; use a new folder"
            )
        earlier_domains = previous["domains"]
    pieces = choose_pieces(settings, jobs)
    pairing = {
        "version": 1,
        "settings": asdict(settings),
        "domains": sorted(set(domains) | set(earlier_domains)),
        "pieces": [p.info() for p in pieces],
    }
    write_json(pairing_path, pairing)

    folders = [(out / side, side) for side in SIDES] if settings.trait else [(out, "")]
    todo = [
        (
            piece,
            domain,
            folder / domain / f"{piece.name}.flac",
            settings.sample_rate,
            settings.trait,
            side,
            settings.soundfont,
        )
        for folder, side in folders
        for piece in pieces
        for domain in domains
        if not (folder / domain / f"{piece.name}.flac").is_file()  # done by an earlier, interrupted run
    ]
    with (
        ProcessPoolExecutor(max_workers=jobs) as pool,
        tqdm(total=len(todo), desc="rendering", unit="file", disable=None) as bar,
    ):
        for _ in pool.map(_render_file, *zip(*todo)) if todo else ():
            bar.update()
    return pairing

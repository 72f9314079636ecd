import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from umt.cli import main
from umt.data.instruments import INSTRUMENTS, Instrument, parse_instruments
from umt.data.make_bench import NOTE_DTYPE, place_in_range
from umt.data.manifest import Manifest

REQUIRED = ["piano", "violin", "cello", "flute", "clarinet", "trumpet", "organ", "acoustic guitar", "harpsichord"]


def bench(out: Path, *extra: str, seed: int = 0) -> dict:
    # Ten seconds per domain in 2-second excerpts: five pieces, enough for all three splits.
    argv = ["make-bench", str(out), "--domains", "piano,violin", "--minutes", str(10 / 60), "--clip-seconds", "2"]
    assert main([*argv, "--seed", str(seed), "--jobs", "2", *extra]) == 0
    return json.loads((out / "pairing.json").read_text())


def audio_of(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): sf.read(p)[0] for p in sorted(folder.rglob("*.flac"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "b"
    bench(out)
    return out


def test_required_instruments_are_available():
    assert parse_instruments(",".join(REQUIRED)) == [n.replace(" ", "_") for n in REQUIRED]


def test_same_pieces_in_every_domain(corpus: Path):
    pairing = json.loads((corpus / "pairing.json").read_text())
    names = [p["name"] for p in pairing["pieces"]]
    assert len(names) == 5 and pairing["domains"] == ["piano", "violin"]
    assert sum(p["seconds"] for p in pairing["pieces"]) == pytest.approx(10.0, abs=0.01)
    for domain in ("piano", "violin"):
        assert sorted(p.stem for p in (corpus / domain).glob("*.flac")) == sorted(names)
    piano, violin = sf.info(corpus / "piano" / f"{names[0]}.flac"), sf.info(corpus / "violin" / f"{names[0]}.flac")
    assert piano.samplerate == 16000 and piano.frames == violin.frames  # paired: same timing


def test_make_bench_is_deterministic(corpus: Path, tmp_path: Path):
    again = tmp_path / "again"
    bench(again)
    assert (again / "pairing.json").read_text() == (corpus / "pairing.json").read_text()
    first, second = audio_of(corpus), audio_of(again)
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    other = bench(tmp_path / "other", seed=1)
    assert [p["name"] for p in other["pieces"]] != [
        p["name"] for p in json.loads((corpus / "pairing.json").read_text())["pieces"]
    ]


def test_domains_sound_different(corpus: Path):
    name = next((corpus / "piano").glob("*.flac")).name
    piano, _ = sf.read(corpus / "piano" / name)
    violin, _ = sf.read(corpus / "violin" / name)
    assert np.abs(piano).max() == pytest.approx(10 ** (-1 / 20), abs=1e-3)
    assert np.corrcoef(piano, violin)[0, 1] < 0.5


def test_prepare_honours_the_pairing(corpus: Path, tmp_path: Path):
    assert main(["prepare", str(corpus), str(tmp_path / "prep"), "--jobs", "1"]) == 0
    manifest = Manifest.read(tmp_path / "prep")
    assert manifest.paired
    split_of = {}
    for entry in manifest.files:
        assert entry.piece == Path(entry.source).stem
        assert split_of.setdefault(entry.piece, entry.split) == entry.split  # same split in every domain
    assert sorted(split_of.values()) == ["test", "train", "train", "train", "val"]
    assert {e.piece for e in manifest.entries("piano")} == {e.piece for e in manifest.entries("violin")}


def test_rerun_into_the_same_folder(corpus: Path, tmp_path: Path, capsys):
    before = {p: p.stat().st_mtime_ns for p in corpus.rglob("*.flac")}
    bench(corpus)  # same settings: nothing to redo
    assert {p: p.stat().st_mtime_ns for p in corpus.rglob("*.flac")} == before
    assert main(["make-bench", str(corpus), "--domains", "piano", "--minutes", "0.1"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_drums_are_added(tmp_path: Path):
    plain, drums = tmp_path / "plain", tmp_path / "drums"
    bench(plain)
    bench(drums, "--with-drums")
    name = next((plain / "piano").glob("*.flac")).name
    a, _ = sf.read(plain / "piano" / name)
    b, _ = sf.read(drums / "piano" / name)
    # Drums add broadband energy above the chorale's range.
    high = lambda x: np.abs(np.fft.rfft(x))[len(x) // 4 :].sum() / np.abs(np.fft.rfft(x)).sum()
    assert high(b) > 2 * high(a)


def test_unknown_instrument_is_a_clear_error(tmp_path: Path, capsys):
    assert main(["make-bench", str(tmp_path / "x"), "--domains", "piano,kazoo"]) == 2
    err = capsys.readouterr().err
    assert "kazoo" in err and "violin" in err


def test_place_in_range_keeps_pitch_classes():
    notes = np.array([(0, 1, 36, 80), (0, 1, 48, 80), (0, 1, 79, 80), (1, 2, 60, 80)], dtype=NOTE_DTYPE)
    placed = place_in_range(notes, INSTRUMENTS["flute"])
    flute = INSTRUMENTS["flute"]
    assert ((placed["key"] >= flute.low) & (placed["key"] <= flute.high)).all()
    assert set(placed["key"] % 12) == set(notes["key"] % 12)
    # Two notes folded onto one key at the same time become one.
    narrow = place_in_range(notes[:2], Instrument(0, 60, 71))
    assert len(narrow) == 1 and narrow["key"][0] == 60


def test_trait_pairs_change_only_their_trait():
    from umt.data.make_bench import with_trait

    # a chord of four voices held 1 s, then a single note
    notes = np.array([(0.0, 1.0, k, 90) for k in (48, 55, 64, 72)] + [(1.0, 1.5, 60, 90)], dtype=NOTE_DTYPE)
    assert np.array_equal(with_trait(notes, "register", "with")["key"], notes["key"] + 12)
    assert np.array_equal(with_trait(notes, "register", "without"), notes)
    short = with_trait(notes, "articulation", "with")
    assert np.allclose(short["end"] - short["start"], [1 / 3] * 4 + [0.5 / 3]) and np.array_equal(
        short["key"], notes["key"]
    )
    outer = with_trait(notes, "density", "without")
    assert sorted(outer["key"].tolist()) == [48, 60, 72]  # the chord's outer voices, and the lone note
    assert np.array_equal(with_trait(notes, "density", "with"), notes)


def test_make_bench_renders_trait_pairs(tmp_path: Path):
    import librosa

    out = tmp_path / "register"
    argv = [
        "make-bench",
        str(out),
        "--domains",
        "piano",
        "--minutes",
        str(4 / 60),
        "--clip-seconds",
        "2",
        "--trait",
        "register",
    ]
    assert main(argv) == 0
    with_files, without_files = sorted((out / "with").rglob("*.flac")), sorted((out / "without").rglob("*.flac"))
    assert [p.name for p in with_files] == [p.name for p in without_files] and with_files

    def mean_midi(path: Path) -> float:
        """The energy-weighted mean MIDI number of the constant-Q spectrum (harmonics included)."""
        audio, rate = sf.read(path, dtype="float32")
        energy = (np.abs(librosa.cqt(audio, sr=rate, fmin=librosa.midi_to_hz(24), n_bins=84)) ** 2).sum(axis=1)
        return 24 + float((energy * np.arange(84)).sum() / energy.sum())

    # an octave up: the notes' 12 semitones, diluted by the harmonics (about 9 measured)
    assert all(mean_midi(a) > mean_midi(b) + 6 for a, b in zip(with_files, without_files))

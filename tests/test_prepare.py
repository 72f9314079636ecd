import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tone

import umt.data.prepare as prepare_module
from umt.cli import main
from umt.data.manifest import Manifest, assign_splits


def test_prepare_skips_bad_files_and_prepares_the_rest(messy_source: Path, tmp_path: Path, capsys):
    out = tmp_path / "prep"
    assert main(["prepare", str(messy_source), str(out), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out

    manifest = Manifest.read(out)
    assert manifest.domains == ["piano", "violin"]
    assert sorted(f.source for f in manifest.files) == [
        "piano/a.wav",
        "piano/deep/er/b.flac",
        "violin/c.wav",
        "violin/d.ogg",
    ]
    reasons = {s["source"]: s["reason"] for s in manifest.skipped}
    assert set(reasons) == {
        "piano/corrupt.wav",
        "violin/tiny.wav",
        "violin/silent.wav",
        "violin/empty.flac",
        "violin/notes.wav",
    }
    assert reasons["violin/tiny.wav"].startswith("too short")
    assert reasons["violin/silent.wav"].startswith("silent")
    assert reasons["violin/empty.flac"].startswith("empty")
    assert reasons["violin/notes.wav"].startswith("cannot decode audio")
    for source in reasons:
        assert f"skipped {source}: " in printed  # every skip is reported with its reason
    assert "train min" in printed and "\nviolin " in printed  # the per-domain table

    b = next(f for f in manifest.files if f.source.endswith("b.flac"))
    array = manifest.load(b)
    assert isinstance(array, np.memmap) and array.dtype == np.int16
    assert array.size == b.samples == 32000  # 2 s at 44.1 kHz stored at 16 kHz
    assert (out / "piano" / "deep" / "er" / "b.npy").is_file()
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["domains"]["piano"]["files"] == 2 and raw["domains"]["violin"]["skipped"] == 4
    assert not list(out.rglob(".*.tmp"))


def test_a_domain_left_empty_makes_prepare_fail(tmp_path: Path, capsys):
    src = tmp_path / "src"
    write_tone(src / "piano" / "a.wav", 1.5)
    (src / "organ").mkdir()
    (src / "organ" / "broken.wav").write_text("nope")
    assert main(["prepare", str(src), str(tmp_path / "prep"), "--jobs", "1"]) == 1
    captured = capsys.readouterr()
    assert "organ" in captured.err and "skipped organ/broken.wav" in captured.out
    assert (tmp_path / "prep" / "piano" / "a.npy").is_file()


def test_missing_source_is_a_one_line_error(tmp_path: Path, capsys):
    assert main(["prepare", str(tmp_path / "nowhere"), str(tmp_path / "prep")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere: not a folder" in err


def test_rerun_is_incremental(messy_source: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "prep"
    prepare_module.prepare(messy_source, out, 16000, {"train": 0.8, "val": 0.1, "test": 0.1})
    converted: list[str] = []
    real_convert = prepare_module._convert

    def spy(job, *args):
        converted.append(job.rel)
        return real_convert(job, *args)

    monkeypatch.setattr(prepare_module, "_convert", spy)
    again = prepare_module.prepare(messy_source, out, 16000, {"train": 0.8, "val": 0.1, "test": 0.1})
    # Only the skipped files are looked at again; every prepared one is reused.
    assert sorted(converted) == sorted(s["source"] for s in again.skipped)
    assert len(again.files) == 4

    converted.clear()
    write_tone(messy_source / "piano" / "a.wav", 3.0, 16000, 220)  # changed
    write_tone(messy_source / "violin" / "new.wav", 1.5)  # added
    third = prepare_module.prepare(messy_source, out, 16000, {"train": 0.8, "val": 0.1, "test": 0.1})
    assert {"piano/a.wav", "violin/new.wav"} <= set(converted)
    assert not {"piano/deep/er/b.flac", "violin/c.wav", "violin/d.ogg"} & set(converted)
    assert next(f for f in third.files if f.source == "piano/a.wav").samples == 48000


def test_rerun_at_another_rate_is_refused(messy_source: Path, tmp_path: Path, capsys):
    out = tmp_path / "prep"
    assert main(["prepare", str(messy_source), str(out)]) == 0
    assert main(["prepare", str(messy_source), str(out), "--sample-rate", "22050"]) == 2
    assert "prepared at 16000 Hz" in capsys.readouterr().err


def test_splits_are_deterministic_and_proportional():
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    groups = [f"file{i}" for i in range(50)]
    a = assign_splits(groups, fractions, seed=1)
    assert a == assign_splits(reversed(groups), fractions, seed=1)
    assert a != assign_splits(groups, fractions, seed=2)
    counts = {s: list(a.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 40, "val": 5, "test": 5}
    small = assign_splits(["x", "y", "z"], fractions, seed=0)
    assert sorted(small.values()) == ["test", "train", "val"]


def test_bad_split_flag(messy_source: Path, tmp_path: Path, capsys):
    assert main(["prepare", str(messy_source), str(tmp_path / "p"), "--split", "80/20"]) == 2
    assert "--split" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["prepare", "--help"], ["make-bench", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    if argv == ["--help"]:
        out = capsys.readouterr().out
        assert "prepare" in out and "make-bench" in out


def test_two_prepares_into_one_folder_give_the_manifest_of_one(messy_source: Path, tmp_path: Path):
    import os
    import subprocess
    import sys

    argv = lambda out: [sys.executable, "-m", "umt", "prepare", str(messy_source), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert subprocess.run(argv(tmp_path / "alone"), env=env, capture_output=True, check=False).returncode == 0
    jobs = [subprocess.Popen(argv(tmp_path / "shared"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    for job in jobs:
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0 and "Traceback" not in err, err
    alone, shared = (json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("alone", "shared"))
    assert shared["files"] == alone["files"] and shared["skipped"] == alone["skipped"]
    arrays = lambda name: sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*.npy"))
    assert arrays("shared") == arrays("alone") and not list((tmp_path / "shared").rglob(".*.tmp"))

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import write_tone

from umt.cli import main
from umt.translate import find_jobs, shard


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    write_tone(folder / "one.wav", 0.30, 16000, 300)
    write_tone(folder / "sub" / "two.flac", 0.21, 44100, 500)  # resampled on the way in
    (folder / "sub" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return folder


def translate(model: Path, *args: str) -> int:
    return main(["translate", "--model", str(model), "--batch-size", "4", "--chunk-seconds", "0.05", *args])


def test_folder_with_a_corrupt_file(tiny_checkpoint: Path, inputs: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert translate(tiny_checkpoint, "--to", "high,low", str(inputs), "-o", str(out)) == 1
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert written == ["high/one.wav", "high/sub/two.wav", "low/one.wav", "low/sub/two.wav"]
    captured = capsys.readouterr()
    assert "broken.wav: cannot decode audio" in captured.out
    assert "1 input(s) failed" in captured.out
    assert "Traceback" not in captured.err
    for name, seconds in (("one.wav", 0.30), ("sub/two.wav", 0.21)):
        info = sf.info(out / "low" / name)
        assert info.samplerate == 16000 and info.frames == round(seconds * 16000)
    assert not list(out.rglob(".*.tmp"))


def test_existing_outputs_are_skipped_unless_overwrite(tiny_checkpoint: Path, tmp_path: Path, capsys):
    source = write_tone(tmp_path / "in" / "a.wav", 0.2)
    out = tmp_path / "out"
    assert translate(tiny_checkpoint, "--to", "low", str(source), "-o", str(out)) == 0
    target = out / "low" / "a.wav"
    first = sf.read(target)[0]
    target.write_bytes(b"placeholder")  # stands in for an output from an earlier run
    assert translate(tiny_checkpoint, "--to", "low", str(source), "-o", str(out)) == 0
    assert target.read_bytes() == b"placeholder"
    assert "skipped 1 existing" in capsys.readouterr().out
    assert translate(tiny_checkpoint, "--to", "low", "--overwrite", str(source), "-o", str(out)) == 0
    np.testing.assert_array_equal(sf.read(target)[0], first)  # same seed: same translation


def test_seed_and_temperature(tiny_checkpoint: Path, tmp_path: Path):
    source = write_tone(tmp_path / "a.wav", 0.2)

    def render(name: str, *flags: str) -> np.ndarray:
        assert translate(tiny_checkpoint, "--to", "high", *flags, str(source), "-o", str(tmp_path / name)) == 0
        return sf.read(tmp_path / name / "high" / "a.wav")[0]

    assert not np.array_equal(render("s0", "--seed", "0"), render("s1", "--seed", "1"))
    np.testing.assert_array_equal(
        render("g0", "--temperature", "0", "--seed", "0"), render("g1", "--temperature", "0", "--seed", "1")
    )


def test_shards_cover_every_file_once(tmp_path: Path):
    for i in range(7):
        write_tone(tmp_path / "in" / f"d{i % 2}" / f"f{i}.wav", 0.1)
    jobs = find_jobs([tmp_path / "in"], ".wav")
    parts = [shard(jobs, i, 3) for i in range(3)]
    names = [j.rel for part in parts for j in part]
    assert sorted(names) == sorted(j.rel for j in jobs) and len(names) == len(set(names)) == 7


def test_shard_flag(tiny_checkpoint: Path, tmp_path: Path):
    for i in range(4):
        write_tone(tmp_path / "in" / f"f{i}.wav", 0.1)
    out = tmp_path / "out"
    for i in range(2):
        assert translate(tiny_checkpoint, "--to", "low", "--shard", f"{i}/2", str(tmp_path / "in"), "-o", str(out)) == 0
        assert len(list(out.rglob("*.wav"))) == 2 * (i + 1)


def test_list_domains_and_bad_flags(tiny_checkpoint: Path, tmp_path: Path, capsys):
    assert translate(tiny_checkpoint, "--list-domains") == 0
    assert capsys.readouterr().out.split() == ["high", "low"]
    assert translate(tiny_checkpoint, "--to", "violin", str(tmp_path), "-o", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "violin" in err and "high, low" in err and err.count("\n") == 1
    assert translate(tiny_checkpoint, "--shard", "3/2", str(tmp_path), "-o", str(tmp_path / "o")) == 2
    assert translate(tiny_checkpoint, str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o")) == 2
    assert "missing.wav: no such file" in capsys.readouterr().err
    assert main(["translate", "--model", str(tmp_path / "nope.pt"), "--list-domains"]) == 2


def test_too_short_input_is_reported(tiny_checkpoint: Path, tmp_path: Path, capsys):
    write_tone(tmp_path / "in" / "blip.wav", 0.004)  # 64 samples: less than one 100-sample latent frame
    write_tone(tmp_path / "in" / "ok.wav", 0.1)
    assert translate(tiny_checkpoint, "--to", "low", str(tmp_path / "in"), "-o", str(tmp_path / "out")) == 1
    assert "blip.wav: too short" in capsys.readouterr().out
    assert (tmp_path / "out" / "low" / "ok.wav").is_file()


def test_bad_output_folder_device_or_domain_list_stop_before_any_work(tiny_checkpoint: Path, tmp_path: Path, capsys):
    song = write_tone(tmp_path / "song.wav", 0.2)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    taken = tmp_path / "taken"
    (taken).mkdir()
    (taken / "low").write_text("")  # where the low outputs would go
    for args, message in (
        (["-o", str(a_file)], "exists and is not a folder"),
        (["-o", str(a_file / "sub")], "cannot write there"),
        (["-o", str(taken)], "taken/low exists and is not a folder"),
        (["-o", str(tmp_path / "o"), "--device", "foo"], "--device foo: choose auto, cpu, cuda or cuda:N"),
        (["-o", str(tmp_path / "o"), "--to", ""], "--to '': name at least one domain"),
    ):
        assert translate(tiny_checkpoint, str(song), *args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "o").exists()


def test_ctrl_c_while_translating_to_two_domains_exits_130_at_once(tiny_checkpoint: Path, tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys
    import time

    long = write_tone(tmp_path / "long.wav", 300.0)  # minutes of decoding: interrupted long before the end
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "umt", "translate", "--model", str(tiny_checkpoint), str(long), "-o", str(out),
            "--batch-size", "2"]  # two rows: two generation threads  # fmt: skip

    # As from a terminal: Ctrl-C handled by default. (A process inherits an ignored or blocked
    # SIGINT, and something in the full test run leaves pytest's so: the child never heard it.)
    def default_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    job = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"},
                           preexec_fn=default_sigint)  # noqa: PLW1509 (the child only resets signals)  # fmt: skip
    # OUT is made once the model is loaded, just before the work: interrupted there, not in the
    # imports, whose length depends on how busy the machine is
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
    time.sleep(3)
    assert job.poll() is None
    job.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = job.communicate(timeout=30)
    assert job.returncode == 130, err
    assert time.monotonic() - sent < 3
    assert "terminate called" not in err and "Traceback" not in err
    assert not [p for p in out.rglob("*") if p.is_file()]  # no partial outputs


def test_a_files_translation_does_not_depend_on_its_batch_mates(tiny_checkpoint: Path, tmp_path: Path):
    write_tone(tmp_path / "alone" / "good.wav", 2.5, 16000, 300)
    write_tone(tmp_path / "folder" / "good.wav", 2.5, 16000, 300)
    write_tone(tmp_path / "folder" / "long.wav", 2.0, 16000, 500)  # shares the decoding batch with good.wav
    for name in ("alone", "folder"):
        assert (
            main(
                [
                    "translate",
                    "--model",
                    str(tiny_checkpoint),
                    str(tmp_path / name),
                    "-o",
                    str(tmp_path / f"{name}-out"),
                ]
            )
            == 0
        )
    alone, _ = sf.read(tmp_path / "alone-out" / "low" / "good.wav")
    together, _ = sf.read(tmp_path / "folder-out" / "low" / "good.wav")
    np.testing.assert_array_equal(alone, together)


def test_outputs_at_another_sample_rate(tiny_checkpoint: Path, tmp_path: Path):
    song = write_tone(tmp_path / "song.wav", 0.3)
    assert (
        translate(tiny_checkpoint, str(song), "--to", "low", "--sample-rate", "44100", "-o", str(tmp_path / "o")) == 0
    )
    info = sf.info(tmp_path / "o" / "low" / "song.wav")
    assert info.samplerate == 44100 and info.channels == 1 and abs(info.duration - 0.3) < 1e-3
    assert translate(tiny_checkpoint, str(song), "--sample-rate", "5", "-o", str(tmp_path / "o")) == 2


def test_hostile_inputs_are_refused_or_repaired_and_reported_and_never_blast(
    tiny_checkpoint: Path, tmp_path: Path, capsys
):
    import os

    folder = tmp_path / "in"
    sine = np.sin(np.arange(32000) / 16000 * 2 * np.pi * 300).astype(np.float32) * 0.5
    with_nan = sine.copy()
    with_nan[8000:8100] = np.nan
    folder.mkdir()
    sf.write(folder / "nan.wav", with_nan, 16000, subtype="FLOAT")
    sf.write(folder / "dc.wav", np.full(16000, 0.5, np.float32), 16000, subtype="FLOAT")
    sf.write(folder / "hot.wav", sine * 40, 16000, subtype="FLOAT")  # 26 dB above full scale
    (folder / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    os.mkfifo(folder / "pipe.wav")
    out = tmp_path / "out"
    assert translate(tiny_checkpoint, "--to", "low", str(folder), "-o", str(out)) == 1
    printed = capsys.readouterr().out
    assert "3 input(s) failed" in printed
    assert "nan.wav: 100 non-finite sample(s) (NaN or infinity), the first at 0.500 s" in printed
    assert "gone.wav: a dangling symbolic link" in printed and "pipe.wav: not a regular file" in printed
    assert (
        "dc.wav: a DC offset of +0.500 removed" in printed
        and "hot.wav: input peaks 26.0 dB above full scale" in printed
    )
    assert sorted(p.name for p in (out / "low").iterdir()) == ["dc.wav", "hot.wav"]
    for name in ("dc.wav", "hot.wav"):
        audio = sf.read(out / "low" / name)[0]
        assert np.isfinite(audio).all() and np.abs(audio).max() < 1.0 and np.sqrt(np.mean(audio**2)) < 0.5

    assert translate(tiny_checkpoint, "--to", "low", "--zero-nonfinite", str(folder / "nan.wav"), "-o", str(out)) == 0
    assert "set to 0" in capsys.readouterr().out and (out / "low" / "nan.wav").is_file()


def test_two_processes_translating_into_one_folder_write_each_output_once_as_one_would(
    tiny_checkpoint: Path, tmp_path: Path
):
    import os
    import subprocess
    import sys

    folder = tmp_path / "in"
    for i in range(6):
        write_tone(folder / f"{i}.wav", 0.6, 16000, 200 + 50 * i)
    argv = lambda out, *more: [sys.executable, "-m", "umt", "translate", "--model", str(tiny_checkpoint), str(folder),
                               "-o", str(out), "--to", "low", "--batch-size", "2", "--chunk-seconds", "0.05", *more]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert subprocess.run(argv(tmp_path / "alone"), env=env, capture_output=True, check=False).returncode == 0
    shared = tmp_path / "shared"
    jobs = [
        subprocess.Popen(argv(shared, *shard), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for shard in ([], ["--shard", "0/2"])
    ]  # fmt: skip  (a whole run beside half of one: shards miscounted)
    for job in jobs:
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0 and "Traceback" not in err, err
    written = sorted(p.name for p in (shared / "low").iterdir())
    assert written == [f"{i}.wav" for i in range(6)]  # no temporary file left, nothing doubled
    for name in written:
        np.testing.assert_array_equal(sf.read(shared / "low" / name)[0], sf.read(tmp_path / "alone" / "low" / name)[0])


@pytest.mark.parametrize("renderer,overrides", [
    ("wavenet", {"preset_name": "tiny"}),  # a waveform encoder, a WaveNet on the latent
    ("wavenet", {"preset_name": "tiny-spectral", "spectrum_flutter": True, "sample_output": "logistic"}),
    ("sines", {"preset_name": "tiny-spectral", "spectrum_flutter": True, "latent_stride": 3}),
    ("sines", {"preset_name": "tiny", "decoder_type": "spectral", "spectrum_bins": 48, "spectrum_midi_low": 36, "pool": 160}),
])  # fmt: skip
def test_a_recording_rendered_span_by_span_equals_the_whole_and_so_does_its_file(
    renderer: str, overrides: dict, tmp_path: Path
):
    """translate reads, renders and writes a long recording a span at a time (bounded memory):
    the result is the whole-file rendering's, to float rounding."""
    import torch

    from umt.audio import HEADROOM, load_audio
    from umt.checkpoint import save_checkpoint
    from umt.model import UMT
    from umt.presets import preset
    from umt.translator import Translator

    torch.manual_seed(0)
    cfg = preset(overrides.pop("preset_name"), ["a"], **overrides)
    model = UMT(cfg).eval()
    t = np.arange(int(0.9 * cfg.sample_rate)) / cfg.sample_rate
    sf.write(tmp_path / "song.wav", 0.3 * np.sin(2 * np.pi * 330 * t + 3 * np.sin(2 * np.pi * 5 * t)) * np.minimum(1, 2 * t),
             cfg.sample_rate, subtype="FLOAT")  # fmt: skip
    audio = load_audio(tmp_path / "song.wav", cfg.sample_rate)
    # the same translator twice: rendering in spans of 3 chunks, and in one span (batches of 3
    # chunks either way: a sampled value may flip with the rounding of another batch's sums)
    spanned, whole = (Translator(model, torch.device("cpu"), chunk_seconds=0.03, batch_size=3, renderer=renderer)
                      for _ in range(2))  # fmt: skip
    whole.span_frames = 10**9
    assert len(whole.spans(audio.size)) == 1 and len(spanned.spans(audio.size)) >= 8
    expected, got = (t.decode([t.encode(audio)], [audio.size], "a", ["song.wav"])[0] for t in (whole, spanned))
    assert expected.shape == audio.shape and np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)

    save_checkpoint(tmp_path / "m.pt", {"config": cfg.to_dict(), "model": model.state_dict()})
    assert main(["translate", "--model", str(tmp_path / "m.pt"), str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"),
                 "--batch-size", "3", "--chunk-seconds", "0.03", "--renderer", renderer]) == 0  # fmt: skip
    written, _ = sf.read(tmp_path / "out" / "a" / "song.wav", dtype="float32")
    peak = np.abs(expected).max()
    gain = HEADROOM / peak if peak > 1 else 1.0  # (an untrained WaveNet's equal-power joins may pass full scale)
    np.testing.assert_allclose(written, expected * gain, atol=1.5 / 32768, rtol=0)  # 16-bit


def test_an_output_that_cannot_be_written_is_a_failure_and_the_rest_carry_on(tiny_checkpoint: Path, tmp_path: Path):
    """Files beyond a size limit cannot be written (RLIMIT_FSIZE: as when the disk is full):
    each output that fails is one line among the failures, and nothing half-written is left."""
    import resource
    import signal
    import subprocess
    import sys

    write_tone(tmp_path / "in" / "a.wav", 0.3, 16000, 300)
    write_tone(tmp_path / "in" / "b.wav", 0.3, 16000, 400)
    limit = 30_000  # bytes: the input's scratch file (4 bytes a sample at 16 kHz) fits, the 44.1 kHz output's does not

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails (EFBIG) instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    argv = [sys.executable, "-m", "umt", "translate", "--model", str(tiny_checkpoint), str(tmp_path / "in"),
            "-o", str(tmp_path / "out"), "--to", "low", "--sample-rate", "44100"]  # fmt: skip
    job = subprocess.run(argv, capture_output=True, text=True, preexec_fn=small_files, check=False)
    assert job.returncode == 1 and "Traceback" not in job.stderr, job.stderr
    assert "2 input(s) failed" in job.stdout
    for name in ("a.wav", "b.wav"):
        assert f"{name}: into low: cannot write (File too large)" in job.stdout
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]

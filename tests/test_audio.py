from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tone

from umt.audio import AudioError, audio_files, load_audio, mu_law_decode, mu_law_encode, write_audio
from umt.fileio import atomic_path


def test_mu_law_round_trip_is_exact_on_all_256_codes():
    codes = torch.arange(256)
    assert torch.equal(mu_law_encode(mu_law_decode(codes)), codes)
    assert mu_law_decode(torch.tensor([0, 255])).tolist() == [-1.0, 1.0]


def test_mu_law_quantisation_error_is_at_most_half_a_step():
    x = torch.linspace(-1, 1, 200001)
    codes = mu_law_encode(x)
    assert codes.min() == 0 and codes.max() == 255
    # In the companded domain every value is within half a code step of its code.
    companded = torch.sign(x) * torch.log1p(255 * x.abs()) / np.log1p(255)
    centre = codes.float() * 2 / 255 - 1
    assert (companded - centre).abs().max() <= 1 / 255 + 1e-6
    # Small amplitudes keep fine resolution (the point of mu-law).
    small = torch.linspace(-0.01, 0.01, 1001)
    assert (mu_law_decode(mu_law_encode(small)) - small).abs().max() < 3.1e-4  # half a step near 0.01


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_then_read_round_trip(tmp_path: Path, suffix: str):
    audio = tone(1.0, 16000, 440, amplitude=0.8)
    path = tmp_path / f"x{suffix}"
    write_audio(path, audio, 16000)
    back = load_audio(path, 16000)
    assert back.dtype == np.float32 and back.shape == audio.shape
    assert np.abs(back - audio).max() <= 1 / 32767 + 1e-6
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_failed_atomic_write_leaves_nothing(tmp_path: Path):
    target = tmp_path / "out.wav"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_resampling_a_44k_stereo_file(tmp_path: Path):
    left = tone(1.0, 44100, 1000, amplitude=0.6)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)  # mono mix halves the amplitude
    sf.write(tmp_path / "s.wav", stereo, 44100, subtype="FLOAT")
    audio = load_audio(tmp_path / "s.wav", 16000)
    assert audio.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(audio[2000:14000] * np.hanning(12000)))
    assert np.argmax(spectrum) * 16000 / 12000 == pytest.approx(1000, abs=2)
    assert np.abs(audio[2000:14000]).max() == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("fmt,suffix", [("OGG", ".ogg"), ("MP3", ".mp3")])
def test_reads_compressed_formats(tmp_path: Path, fmt: str, suffix: str):
    path = tmp_path / f"c{suffix}"
    sf.write(path, tone(1.0, 22050, 440), 22050, format=fmt)
    audio = load_audio(path, 16000)
    assert abs(audio.size - 16000) < 1200  # mp3 may pad a frame
    assert np.abs(audio).max() > 0.3


def test_undecodable_files_raise_one_clear_error(tmp_path: Path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(AudioError, match=r"notes\.wav: cannot decode audio \(.+\)"):
        load_audio(text)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.flac: empty file"):
        load_audio(empty)
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")


def test_non_finite_samples_are_refused_with_their_time_or_zeroed_on_request(tmp_path: Path):
    audio = tone(2.0).astype(np.float32)
    audio[24000:24100] = np.nan
    audio[30000] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 101 non-finite sample\(s\) .* the first at 1\.500 s"):
        load_audio(path)
    notes = []
    fixed = load_audio(path, zero_nonfinite=True, note=notes.append)
    assert np.isfinite(fixed).all() and np.abs(fixed).max() <= 1.0
    assert len(notes) == 1 and "set to 0" in notes[0]


def test_dc_is_removed_and_audio_above_full_scale_is_scaled_not_clipped(tmp_path: Path):
    notes = []
    sf.write(tmp_path / "dc.wav", np.full(16000, 0.5, np.float32), 16000, subtype="FLOAT")
    assert np.abs(load_audio(tmp_path / "dc.wav", note=notes.append)).max() < 1e-3  # a constant offset: silence
    assert "DC offset of +0.500" in notes[0]
    loud = (40 * tone(1.0)).astype(np.float32)  # 32 dB above full scale
    sf.write(tmp_path / "loud.wav", loud, 16000, subtype="FLOAT")
    back = load_audio(tmp_path / "loud.wav", note=notes.append)
    assert np.abs(back).max() == pytest.approx(1.0, abs=0.02) and "above full scale: scaled down" in notes[1]
    np.testing.assert_allclose(back[4000:12000], loud[4000:12000] * back.max() / loud.max(), atol=2e-3)  # undistorted
    offset = (1.5 + tone(1.0, amplitude=0.2)).astype(np.float32)  # above full scale only by its DC
    sf.write(tmp_path / "offset.wav", offset, 16000, subtype="FLOAT")
    assert np.abs(load_audio(tmp_path / "offset.wav", note=notes.append)).max() == pytest.approx(0.2, abs=0.01)
    assert "DC offset of +1.500" in notes[2] and len(notes) == 3  # nothing to scale once the offset is gone
    clean = tone(1.0)
    sf.write(tmp_path / "clean.wav", clean, 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "clean.wav", note=notes.append), clean, atol=2e-3)
    assert len(notes) == 3  # nothing to report on clean audio


def test_non_finite_audio_is_never_written_and_loud_audio_is_scaled(tmp_path: Path):
    bad = tone(0.5).astype(np.float32)
    bad[10] = np.nan
    with pytest.raises(AudioError, match="non-finite"):
        write_audio(tmp_path / "bad.wav", bad, 16000)
    assert not list(tmp_path.iterdir())
    notes = []
    write_audio(tmp_path / "loud.wav", 3 * tone(0.5), 16000, notes.append)
    assert np.abs(sf.read(tmp_path / "loud.wav")[0]).max() < 1.0 and "output peaks 3.5 dB above full scale" in notes[0]


def test_entries_that_cannot_be_read_are_listed(tmp_path: Path):
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    os.mkfifo(folder / "pipe.wav")
    (folder / "locked").mkdir()
    (folder / "locked" / "x.wav").write_bytes(b"")
    (folder / "locked").chmod(0)
    try:
        unreadable = []
        found = audio_files(folder, unreadable)
        if os.geteuid() == 0:  # root lists any folder
            assert sorted(p.name for p in found) == ["gone.wav", "pipe.wav", "x.wav"] and not unreadable
        else:
            assert [p.name for p in found] == ["gone.wav", "pipe.wav"]
            assert unreadable == [(folder / "locked", "cannot list the folder (Permission denied)")]
        with pytest.raises(AudioError, match="gone.wav: a dangling symbolic link"):
            load_audio(folder / "gone.wav")
        with pytest.raises(AudioError, match="pipe.wav: not a regular file"):
            load_audio(folder / "pipe.wav")  # refused at once: opening a fifo would block
    finally:
        (folder / "locked").chmod(0o755)

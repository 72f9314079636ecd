from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def tone(seconds: float, sample_rate: int = 16000, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_tone(path: Path, seconds: float, sample_rate: int = 16000, freq: float = 440.0, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, sample_rate, freq), sample_rate, **kw)
    return path


@pytest.fixture
def messy_source(tmp_path: Path) -> Path:
    """Two domains of good files plus every kind of bad file `prepare` must skip."""
    src = tmp_path / "src"
    write_tone(src / "piano" / "a.wav", 1.5, 16000, 440)
    write_tone(src / "piano" / "deep" / "er" / "b.flac", 2.0, 44100, 660)
    write_tone(src / "violin" / "c.wav", 1.2, 22050, 550)
    write_tone(src / "violin" / "d.ogg", 1.6, 16000, 330)
    write_tone(src / "violin" / "tiny.wav", 0.1, 16000)  # too short
    sf.write(src / "violin" / "silent.wav", np.zeros(16000, np.float32), 16000)
    (src / "violin" / "empty.flac").write_bytes(b"")
    (src / "violin" / "notes.wav").write_text("this is a text file, not audio\n")
    (src / "piano" / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    (src / "piano" / "readme.txt").write_text("ignored: not an audio suffix\n")
    return src


@pytest.fixture(scope="session")
def two_domains(tmp_path_factory) -> Path:
    """A prepared dataset of two easily told-apart domains: low loud sines and high quiet ones.

    Six one-second files each, so the 80/10/10 split leaves a file for val and for test.
    """
    from umt.data.prepare import prepare

    root = tmp_path_factory.mktemp("two_domains")
    for domain, base, amplitude in (("low", 150.0, 0.8), ("high", 2500.0, 0.2)):
        for i in range(6):
            path = root / "src" / domain / f"{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(1.0, 16000, base * 2 ** (i / 6), amplitude), 16000)
    prepare(root / "src", root / "prep", 16000, {"train": 0.8, "val": 0.1, "test": 0.1})
    return root / "prep"


def _untrained(tmp_path_factory, preset_name: str) -> Path:
    """A checkpoint of an untrained model of the preset with domains 'high' and 'low' (random
    weights suffice for plumbing)."""
    import torch

    from umt.checkpoint import save_checkpoint
    from umt.model import UMT
    from umt.presets import preset

    torch.manual_seed(0)
    cfg = preset(preset_name, ["high", "low"])
    path = tmp_path_factory.mktemp("model") / f"{preset_name}.pt"
    save_checkpoint(path, {"config": cfg.to_dict(), "model": UMT(cfg).state_dict()})
    return path


@pytest.fixture(scope="session")
def tiny_spectral_checkpoint(tmp_path_factory) -> Path:
    return _untrained(tmp_path_factory, "tiny-spectral")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return _untrained(tmp_path_factory, "tiny")

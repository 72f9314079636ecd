from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tone, write_tone

from umt.data.augment import Segment, pitch_shift_segment, random_segment
from umt.data.crops import CropDataset, crop_loader
from umt.data.prepare import prepare
from umt.errors import UserError

FRACTIONS = {"train": 1.0, "val": 0.0, "test": 0.0}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crops")
    write_tone(root / "src" / "piano" / "short.wav", 1.0, freq=300)
    write_tone(root / "src" / "piano" / "long.wav", 3.0, freq=500)
    write_tone(root / "src" / "violin" / "v.wav", 2.0, freq=700)
    prepare(root / "src", root / "prep", 16000, FRACTIONS)
    return root / "prep"


def test_augmentation_changes_only_the_segment():
    audio = tone(0.75, 16000, 440)
    segment = Segment(start=2000, stop=6000, semitones=0.5)
    shifted = pitch_shift_segment(audio, 16000, segment)
    assert shifted.shape == audio.shape and shifted.dtype == np.float32
    assert np.array_equal(shifted[:2000], audio[:2000])
    assert np.array_equal(shifted[6000:], audio[6000:])
    inside = shifted[2500:5500]
    assert np.abs(inside - audio[2500:5500]).max() > 0.1
    # Half a semitone up: 440 Hz -> about 452.9 Hz.
    spectrum = np.abs(np.fft.rfft(inside * np.hanning(inside.size), n=1 << 16))
    assert np.argmax(spectrum) * 16000 / (1 << 16) == pytest.approx(440 * 2 ** (0.5 / 12), abs=2.0)


def test_random_segments_follow_the_paper():
    rng = np.random.default_rng(0)
    for _ in range(500):
        s = random_segment(12000, rng)
        assert 0 <= s.start < 6000  # starts in the first half
        assert 3000 <= s.stop - s.start <= 6000  # a quarter to a half of the crop
        assert -0.5 <= s.semitones <= 0.5


def test_items_are_seeded_by_index(prepared: Path):
    from umt.data.manifest import Manifest

    manifest = Manifest.read(prepared)
    ds = CropDataset(manifest, "piano", crop=4000, seed=3)
    x0, y0 = ds[0]["inputs"], ds[0]["targets"]
    assert x0.shape == y0.shape == (4000,) and x0.dtype == torch.int64
    assert 0 <= int(x0.min()) and int(x0.max()) <= 255
    assert not torch.equal(x0, y0)  # the input is augmented, the target is clean
    x0b, y0b = CropDataset(manifest, "piano", crop=4000, seed=3)[0].values()
    assert torch.equal(x0, x0b) and torch.equal(y0, y0b)
    assert not torch.equal(ds[1]["targets"], y0)
    assert not torch.equal(CropDataset(manifest, "piano", crop=4000, seed=4)[0]["targets"], y0)
    clean = CropDataset(manifest, "piano", crop=4000, augment=False, seed=3)[0]
    assert torch.equal(clean["inputs"], clean["targets"]) and torch.equal(clean["targets"], y0)


def test_files_are_drawn_in_proportion_to_duration(prepared: Path):
    from umt.data.manifest import Manifest

    ds = CropDataset(Manifest.read(prepared), "piano", crop=8000, augment=False)

    # short.wav (1 s, 300 Hz) has 8001 crop positions, long.wav (3 s, 500 Hz) 40001.
    def is_short(codes: torch.Tensor) -> bool:
        crossings = int(((codes[1:] >= 128) != (codes[:-1] >= 128)).sum())
        return crossings < 2 * 400 * 8000 / 16000  # 300 Hz: ~300 crossings, 500 Hz: ~500

    share = sum(is_short(ds[i]["targets"]) for i in range(600)) / 600
    assert share == pytest.approx(8001 / 48002, abs=0.05)


def test_ranks_split_the_global_batch(prepared: Path):
    from umt.data.manifest import Manifest

    ds = CropDataset(Manifest.read(prepared), "violin", crop=2000, augment=False)
    whole = [b["targets"] for b in crop_loader(ds, batch_size=4, steps=3)]
    halves = [[b["targets"] for b in crop_loader(ds, batch_size=2, rank=r, world_size=2, steps=3)] for r in (0, 1)]
    for step in range(3):
        assert torch.equal(torch.cat([halves[0][step], halves[1][step]]), whole[step])
    resumed = [b["targets"] for b in crop_loader(ds, batch_size=4, start_step=2, steps=1, workers=2)]
    assert torch.equal(resumed[0], whole[2])


def test_crop_longer_than_every_file(prepared: Path):
    from umt.data.manifest import Manifest

    with pytest.raises(UserError, match="violin"):
        CropDataset(Manifest.read(prepared), "violin", crop=16000 * 5)

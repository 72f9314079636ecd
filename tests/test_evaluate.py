import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tone

from umt.cli import main
from umt.data.manifest import Manifest
from umt.errors import UserError
from umt.judge import HISS, HISS_LOUDEST_DB, RealCrops, add_hiss, load_judge, train_judge
from umt.measures import (
    add_noise,
    chroma_similarity,
    envelope_correlation,
    lsd,
    mr_stft_distance,
    noise_floor_db,
    onset_f1,
    pitch_class_agreement,
    pitch_classes,
    transcribe,
)


def test_pitch_class_agreement():
    a, a_octave_up, c = tone(1.0, 16000, 220.0), tone(1.0, 16000, 440.0), tone(1.0, 16000, 261.63)
    pa, pc = pitch_classes(a, 16000), pitch_classes(c, 16000)
    assert (pa[3:-3] == 9).all() and (pc[3:-3] == 0).all()  # A and C
    assert pitch_class_agreement(pa, pitch_classes(a_octave_up, 16000)) > 0.9  # octaves agree
    assert pitch_class_agreement(pa, pc) < 0.1
    assert pitch_class_agreement(pa, pitch_classes(np.zeros(16000, np.float32), 16000)) is None  # nothing voiced


def test_chroma_similarity():
    a_major = sum(tone(2.0, 16000, f, 0.2) for f in (440.0, 554.37, 659.26))
    c_major = sum(tone(2.0, 16000, f, 0.2) for f in (261.63, 329.63, 392.0))
    assert chroma_similarity(a_major, a_major, 16000) == pytest.approx(1.0, abs=1e-6)
    assert chroma_similarity(a_major, 0.3 * a_major, 16000) == pytest.approx(1.0, abs=1e-3)  # level-free
    assert chroma_similarity(a_major, np.zeros_like(a_major), 16000) < 0.05
    assert chroma_similarity(a_major, c_major, 16000) < 0.6
    # rests shared by both clips are no disagreement; a rest against a chord is
    rest = np.zeros(8000)
    with_rest = np.concatenate([a_major, rest, a_major])
    assert chroma_similarity(with_rest, with_rest, 16000) == pytest.approx(1.0, abs=1e-6)
    assert chroma_similarity(with_rest, np.concatenate([a_major, a_major[:8000], a_major]), 16000) < 0.95
    assert chroma_similarity(rest, rest, 16000) == 1.0


def test_fidelity_measures_score_a_clean_signal_above_the_same_signal_with_noise():
    clean = sum(tone(2.0, 16000, f, 0.2) * np.exp(-np.arange(32000) / 16000.0) for f in (220.0, 330.0, 440.0)).astype(
        np.float32
    )
    noisy = add_noise(clean, -40.0)
    assert noise_floor_db(clean) < noise_floor_db(noisy) - 20  # a pure chord's floor is far below hiss 40 dB down
    assert noise_floor_db(np.zeros(16000, np.float32)) is None
    assert lsd(clean, clean, 16000) == 0.0 and mr_stft_distance(clean, clean) == 0.0
    assert 0 < lsd(noisy, clean, 16000) < lsd(add_noise(clean, -20.0), clean, 16000)
    assert 0 < mr_stft_distance(noisy, clean) < mr_stft_distance(add_noise(clean, -20.0), clean)


def test_envelope_correlation_hears_strikes_against_held_notes_and_ignores_noise_and_level():
    t = np.arange(32000) / 16000.0
    strikes = (np.sin(2 * np.pi * 330 * t) * np.exp(-5 * (t % 0.5))).astype(np.float32)  # a note struck every 0.5 s
    held = (np.sin(2 * np.pi * 330 * t) * np.where(t % 0.5 < 0.45, 0.5, 0.0)).astype(np.float32)  # organ-like
    assert envelope_correlation(strikes, strikes) == pytest.approx(1.0)
    assert envelope_correlation(0.1 * add_noise(strikes, -40.0), strikes) > 0.95  # loudness and hiss aside
    assert envelope_correlation(held, strikes) < 0.5
    assert envelope_correlation(np.zeros(32000, np.float32), strikes) is None  # silence: no dynamics at all


def test_basic_pitch_transcribes_offline_and_onset_f1_matches_notes():
    a4_then_e5 = np.concatenate([tone(0.5, 16000, 440.0, 0.4), tone(0.5, 16000, 659.26, 0.4)])
    notes = transcribe(a4_then_e5, 16000)
    assert {69, 76} <= set(notes[:, 2].astype(int).tolist())  # basic-pitch's ONNX model, from the wheel
    assert onset_f1(notes, notes) == 1.0
    reference = np.array([[0.0, 0.5, 69], [0.5, 1.0, 76]])
    assert onset_f1(notes, reference) > 0.5
    assert onset_f1(notes, reference + [0.2, 0.2, 0]) == 0.0  # onsets 200 ms late
    assert onset_f1(notes, reference + [0, 0, 1]) == 0.0  # a semitone off
    assert onset_f1(np.zeros((0, 3)), np.zeros((0, 3))) == 1.0 and onset_f1(np.zeros((0, 3)), reference) == 0.0


METRICS_KEYS = {  # documented in the README, section Evaluation
    "model_domains", "domains", "paired", "clips_per_domain", "seconds", "sampling", "renderers", "latent", "results",
    "summary", "identity", "spectrum_l1", "real", "judge_test_accuracy", "can_fail", "reconstruction", "split",
}  # fmt: skip


@pytest.fixture(scope="module")
def judge_path(two_domains: Path, paired_corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("judge")
    scores = train_judge(
        [two_domains], out, steps=30, batch_per_domain=4, test_clips=6, crop_seconds=0.5, holdout=[paired_corpus]
    )
    assert set(scores["per_domain_accuracy"]) == {"high", "low"}
    assert set(scores["holdout"]) == {str(paired_corpus)}  # a corpus of the same domains it never trained on
    return out / "judge.pt"


def test_note_statistics_tell_a_scale_from_a_repeated_figure_and_from_silence():
    from umt.measures import note_statistics

    def notes(pitches):  # one note a quarter second
        return np.array([(0.25 * i, 0.25 * i + 0.2, p) for i, p in enumerate(pitches)], dtype=float)

    scale = note_statistics(notes([60, 62, 64, 65, 67, 69, 71, 72]), 2.0)  # C twice: 2/8 and six 1/8, 2.75 bits
    figure = note_statistics(notes([60, 64, 67] * 4), 3.0)
    assert scale["notes_per_second"] == 4.0 and figure["notes_per_second"] == 4.0
    assert scale["pitch_class_entropy"] == pytest.approx(2.75)
    assert figure["pitch_class_entropy"] == pytest.approx(np.log2(3))
    assert scale["repetition"] == 0.0
    assert figure["repetition"] == pytest.approx(7 / 10)  # all but the first three trigrams
    silence = note_statistics(np.zeros((0, 3)), 2.0)
    assert silence == {"notes_per_second": 0.0, "pitch_class_entropy": None, "repetition": None}


def test_judge_learns_two_domains(judge_path: Path, two_domains: Path):
    judge, state = load_judge(judge_path)
    assert state["test_accuracy"] == 1.0
    low, high = tone(1.0, 16000, 180.0, 0.8), tone(1.0, 16000, 3000.0, 0.2)
    assert judge.classify([low, high]).tolist() == [judge.cfg.domains.index("low"), judge.cfg.domains.index("high")]
    assert torch.load(judge_path, weights_only=True)["kind"] == "umt-judge"


def test_the_judge_trains_on_float_audio_of_every_corpus(two_domains: Path, paired_corpus: Path):
    """Crops are the stored samples as floats (no mu-law coding to learn as part of an
    instrument), drawn from every corpus given."""
    manifests = [Manifest.read(two_domains), Manifest.read(paired_corpus)]
    crops = RealCrops(manifests, "low", "train", 4000)
    batch = crops.sample(64, np.random.default_rng(0))
    assert batch.dtype == np.float32 and batch.shape == (64, 4000)
    stored = [m.excerpt(e, 0, e.samples) for m in manifests for e in m.entries("low", "train")]
    corpora = {next(i for i, m in enumerate(manifests) for e in m.entries("low", "train") if _holds(m.excerpt(e, 0, e.samples), c))
               for c in batch}  # fmt: skip
    assert corpora == {0, 1}
    assert all(any(_holds(s, c) for s in stored) for c in batch)
    from umt.audio import mu_law_decode, mu_law_encode

    coded = mu_law_decode(mu_law_encode(torch.from_numpy(batch))).numpy()
    assert np.abs(coded - batch).max() > 1e-3  # they are not mu-law decoded samples


def _holds(recording: np.ndarray, crop: np.ndarray) -> bool:
    """Whether crop is a stretch of recording."""
    for start in np.flatnonzero(recording[: recording.size - crop.size + 1] == crop[0]):
        if np.array_equal(recording[start : start + crop.size], crop):
            return True
    return False


def test_evaluate_writes_metrics_report_and_figures(
    tiny_checkpoint: Path, two_domains: Path, judge_path: Path, tmp_path: Path
):
    out = tmp_path / "report"
    argv = ["evaluate", "--model", str(tiny_checkpoint), "--data", str(two_domains), "--out", str(out),
            "--judge", str(judge_path.parent), "--clips", "1", "--seconds", "0.5", "--batch-size", "8"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == METRICS_KEYS and metrics["renderers"] == ["wavenet"]  # the paper's decoders have no preview
    results = metrics["results"]["wavenet"]
    assert metrics["domains"] == ["high", "low"] and metrics["paired"] is False
    assert results["logmel_l1"] is None and results["lsd"] is None  # unpaired: no ground truth
    assert metrics["real"]["target_accuracy"] == {"high": 1.0, "low": 1.0}
    for key in ("target_accuracy", "chroma_similarity", "onset_f1"):
        assert set(results[key]) == {"high", "low"} and set(results[key]["low"]) == {"high", "low"}
        assert all(0.0 <= v <= 1.0 for row in results[key].values() for v in row.values())
        assert metrics["identity"][key] is not None
    assert results["noise_floor_db"]["low"]["high"] < 0 and results["noise_floor_excess_db"]["low"]["high"] is not None
    # every measure meets audio it must score worse than the real thing
    can_fail = metrics["can_fail"]
    real, noisy = can_fail["real audio (against itself)"], can_fail["with white noise -40 dB"]
    assert real["noise_floor_excess_db"] == 0.0 and noisy["noise_floor_excess_db"] > 10
    assert real["target_accuracy"] == 1.0 and real["onset_f1"] == 1.0
    # The identity baseline of an unpaired set compares the input with itself.
    assert metrics["identity"]["chroma_similarity"]["low"]["high"] == pytest.approx(1.0, abs=1e-6)
    assert set(metrics["reconstruction"]) == {"high", "low"} and metrics["reconstruction"]["low"]["bits"] > 0
    report = (out / "report.md").read_text()
    assert (
        "Target accuracy" in report and "target_accuracy_wavenet.png" in report and "Can each measure fail?" in report
    )
    assert (out / "target_accuracy_wavenet.png").stat().st_size > 1000 and (
        out / "chroma_similarity_wavenet.png"
    ).is_file()
    assert list(out.glob("example*.png")) and list((out / "clips").glob("*_translation.wav"))


@pytest.fixture(scope="module")
def paired_corpus(tmp_path_factory) -> Path:
    """make-bench style pairing: five pieces, each as a low tone and as the tone two octaves up."""
    import soundfile as sf

    from umt.data.manifest import PAIRING_NAME
    from umt.data.prepare import prepare

    root = tmp_path_factory.mktemp("paired")
    src = root / "src"
    for domain, amplitude in (("high", 0.2), ("low", 0.6)):
        for i, base in enumerate((220.0, 247.0, 262.0, 294.0, 330.0)):
            path = src / domain / f"p{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(1.0, 16000, base * (4 if domain == "high" else 1), amplitude), 16000)
    (src / PAIRING_NAME).write_text(json.dumps({"pieces": [{"name": f"p{i}"} for i in range(5)]}))
    prepare(src, root / "prep", 16000, {"train": 0.6, "val": 0.2, "test": 0.2})
    assert Manifest.read(root / "prep").paired
    return root / "prep"


def test_evaluate_on_a_paired_corpus(tiny_checkpoint: Path, paired_corpus: Path, tmp_path: Path):
    """chroma and log-mel against the ground truth of the same piece."""
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--data", str(paired_corpus), "--out", str(out),
                 "--clips", "1", "--seconds", "0.5", "--figures", "0"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == METRICS_KEYS
    results = metrics["results"]["wavenet"]
    assert metrics["paired"] and results["logmel_l1"]["low"]["high"] > 0 and results["target_accuracy"] is None
    assert results["lsd"]["low"]["high"] > 0 and results["mr_stft"]["low"]["high"] > 0
    assert (
        metrics["identity"]["logmel_l1"]["low"]["low"] == 0.0 and metrics["identity"]["lsd"]["low"]["low"] == 0.0
    )  # its own ground truth
    # Octave-apart renderings of one piece share their chroma: the identity baseline is high.
    assert metrics["identity"]["chroma_similarity"]["low"]["high"] > 0.8
    # pyin hears the same pitch class an octave apart
    assert metrics["identity"]["pitch_class_agreement"]["low"]["high"] > 0.8
    assert metrics["spectrum_l1"] is None  # a WaveNet decoder predicts no spectrum
    other = metrics["can_fail"]["same notes, another instrument"]  # here: two octaves away
    assert other["lsd"] > metrics["can_fail"]["real audio (against itself)"]["lsd"] == 0.0
    assert metrics["can_fail"]["real audio (against itself)"]["envelope_correlation"] == pytest.approx(1.0)
    assert metrics["split"] == "test" and metrics["latent"] == "continuous"
    # settings are chosen on the val split: its pieces, with their own ground truth
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--data", str(paired_corpus), "--out", str(tmp_path / "val"),
                 "--clips", "1", "--seconds", "0.5", "--figures", "0", "--split", "val"]) == 0  # fmt: skip
    val = json.loads((tmp_path / "val" / "metrics.json").read_text())["results"]["wavenet"]
    assert val["logmel_l1"]["low"]["high"] > 0
    assert val["logmel_l1"]["low"]["high"] != results["logmel_l1"]["low"]["high"]  # other clips


def test_a_spectral_model_scores_its_predicted_spectra_against_the_truth(tiny_spectral_checkpoint: Path, paired_corpus: Path,
                                                                        tmp_path: Path):  # fmt: skip
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(tiny_spectral_checkpoint), "--data", str(paired_corpus), "--out", str(out),
                 "--clips", "1", "--seconds", "0.5", "--figures", "0", "--renderer", "sines"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    l1, identity = metrics["spectrum_l1"], metrics["identity"]["spectrum_l1"]
    assert identity["low"]["low"] == 0.0 and identity["low"]["high"] > 0.05  # two octaves apart: other bins
    assert all(0 < l1[s][t] < 1 for s in l1 for t in l1[s])
    assert "Semitone-spectrum L1" in (out / "report.md").read_text()


def test_a_spectral_model_is_scored_with_its_wavenet_beside_the_sines_preview(tiny_spectral_checkpoint: Path, two_domains: Path,
                                                                             tmp_path: Path):  # fmt: skip
    for renderer, expected in (("sines", ["sines"]), ("wavenet", ["wavenet", "sines"])):
        out = tmp_path / renderer
        assert main(["evaluate", "--model", str(tiny_spectral_checkpoint), "--data", str(two_domains), "--out", str(out),
                     "--clips", "1", "--seconds", "0.5", "--figures", "0", "--renderer", renderer]) == 0  # fmt: skip
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["renderers"] == expected and set(metrics["results"]) == set(expected)
        assert set(metrics["reconstruction"]["low"]) == {"nats", "bits", "gain_nats", "spectrum_l1", "gain_spectrum_l1"}
    wavenet, sines = (metrics["results"][r]["chroma_similarity"]["low"]["high"] for r in expected)
    assert wavenet != sines  # two renderings
    assert " / " in (out / "report.md").read_text()


def test_sines_need_a_spectral_model(tiny_checkpoint: Path, two_domains: Path, tmp_path: Path, capsys):
    argv = ["evaluate", "--model", str(tiny_checkpoint), "--data", str(two_domains), "--out", str(tmp_path / "r"),
            "--renderer", "sines"]  # fmt: skip
    assert main(argv) == 2
    assert "not a spectral model" in capsys.readouterr().err


def test_evaluate_refuses_a_judge_of_other_domains_and_a_judge_as_model(
    tiny_checkpoint: Path, two_domains: Path, judge_path: Path, tmp_path: Path, capsys
):
    from umt.checkpoint import save_checkpoint

    other = tmp_path / "other.pt"
    state = torch.load(judge_path, weights_only=True)
    save_checkpoint(other, {**state, "config": {**state["config"], "domains": ["high", "mid"]}})
    argv = ["evaluate", "--model", str(tiny_checkpoint), "--data", str(two_domains), "--out", str(tmp_path / "r"),
            "--clips", "1", "--seconds", "0.5"]  # fmt: skip
    assert main([*argv, "--judge", str(other)]) == 2
    assert "not trained on low" in capsys.readouterr().err
    assert main([*argv, "--judge", str(judge_path), "--seconds", "0.25"]) == 2  # shorter than its window
    argv[2] = str(judge_path)
    assert main(argv) == 2
    assert "umt-judge checkpoint, not a translation model" in capsys.readouterr().err


def test_a_judge_run_resumes_where_it_stopped(two_domains: Path, tmp_path: Path):
    settings = dict(batch_per_domain=2, test_clips=2, crop_seconds=0.5, tilt_db=3.0)
    train_judge([two_domains], tmp_path / "straight", steps=8, **settings)
    train_judge([two_domains], tmp_path / "resumed", steps=3, **settings)
    with pytest.raises(UserError, match="already holds a run"):
        train_judge([two_domains], tmp_path / "resumed", steps=8, **settings)
    train_judge([two_domains], tmp_path / "resumed", steps=8, resume=True, **settings)
    straight, resumed = (torch.load(tmp_path / run / "judge.pt", weights_only=True)["model"]
                         for run in ("straight", "resumed"))  # fmt: skip
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_a_hiss_judge_hears_noise_under_an_instrument_as_hiss(two_domains: Path, tmp_path: Path):
    """The instrument judge alone hears a tone under hiss as the tone's domain; a judge with the
    hiss class hears it as hiss, and still hears the clean tones as their domains."""
    scores = train_judge([two_domains], tmp_path, steps=40, batch_per_domain=4, test_clips=6, crop_seconds=0.5,
                         hiss_db=45)  # fmt: skip
    judge, state = load_judge(tmp_path / "judge.pt")
    assert judge.cfg.classes == ["high", "low", HISS] or judge.cfg.classes == ["low", "high", HISS]
    assert state["test_accuracy"] == 1.0 and scores["hiss_accuracy"] >= 0.9
    low = tone(1.0, 16000, 180.0, 0.8)
    hissing = add_noise(low, -30.0)
    assert judge.classify([low, hissing]).tolist() == [judge.cfg.classes.index("low"), judge.cfg.classes.index(HISS)]


def test_hiss_is_added_at_the_levels_asked_for():
    crops = np.tile(tone(0.5, 16000, 440.0, 0.5), (64, 1))
    noise = add_hiss(crops, 45.0, np.random.default_rng(0)) - crops
    db = 10 * np.log10(np.mean(noise.astype(np.float64) ** 2, axis=1) / np.mean(crops.astype(np.float64) ** 2, axis=1))
    assert db.max() <= -HISS_LOUDEST_DB + 0.1 and db.min() >= -45.1 and db.max() - db.min() > 15


def test_judge_train_refuses_bad_noise_settings(two_domains: Path, tmp_path: Path, capsys):
    """One line naming the flag, before any training (no run folder is left behind)."""
    argv = ["judge", "train", str(two_domains), "--out", str(tmp_path / "j"), "--steps", "1"]
    for flag, value in (("--hiss-db", "nan"), ("--hiss-db", "inf"), ("--tilt-db", "nan")):
        with pytest.raises(SystemExit) as exit_info:  # argparse's refusal
            main([*argv, flag, value])
        assert exit_info.value.code == 2 and f"argument {flag}: invalid finite value" in capsys.readouterr().err
    assert main([*argv, "--hiss-db", "10"]) == 2
    assert "--hiss-db 10: must be 0 (off) or above 20" in capsys.readouterr().err
    assert not (tmp_path / "j").exists()

from pathlib import Path

import soundfile as sf
import torch

from umt.checkpoint import DEFAULT_MODEL, EXAMPLE_CLIP, load_checkpoint
from umt.cli import main


def test_default_checkpoint_loads_safely_and_lists_its_domains(capsys):
    state = torch.load(DEFAULT_MODEL, weights_only=True)
    assert {"piano", "violin", "flute", "organ"} <= set(state["config"]["domains"])
    assert "optimizer" not in state  # model-only: small enough to ship
    assert main(["translate", "--list-domains"]) == 0
    assert capsys.readouterr().out.split() == state["config"]["domains"]


def test_translating_the_example_with_the_default_model(tmp_path: Path):
    out = tmp_path / "out"
    assert main(["translate", str(EXAMPLE_CLIP), "--to", "violin", "--chunk-seconds", "0.25", "-o", str(out)]) == 0
    info = sf.info(out / "violin" / "example.wav")
    assert abs(info.duration - sf.info(EXAMPLE_CLIP).duration) < 1e-3


def test_the_default_model_continues_the_example_with_its_token_lms(tmp_path: Path, capsys):
    assert set(load_checkpoint(DEFAULT_MODEL)["lm"]) == {"parallel", "joint"}
    for mode in ("parallel", "joint"):
        out = tmp_path / f"{mode}.wav"
        argv = [
            "generate",
            "--prompt",
            str(EXAMPLE_CLIP),
            "--seconds",
            "0.5",
            "--to",
            "piano",
            "-o",
            str(out),
            "--mode",
            mode,
        ]
        assert main(argv) == 0
        assert sf.info(out).frames == 8000 and f"the {mode} LM" in capsys.readouterr().out


def test_export_drops_the_optimiser(tmp_path: Path, two_domains: Path):
    from umt.training.loop import train

    train(two_domains, tmp_path / "run", dict(preset="tiny", steps=1, crop=400, batch_size=1, workers=0), "cpu")
    assert main(["export", str(tmp_path / "run" / "last.pt"), str(tmp_path / "model.pt")]) == 0
    exported = load_checkpoint(tmp_path / "model.pt")
    assert set(exported) == {"config", "model", "step", "train"} and exported["step"] == 1
    assert (tmp_path / "model.pt").stat().st_size < (tmp_path / "run" / "last.pt").stat().st_size
    # into a folder: the file keeps its name
    folder = tmp_path / "shared"
    folder.mkdir()
    assert main(["export", str(tmp_path / "run" / "last.pt"), str(folder)]) == 0
    assert load_checkpoint(folder / "last.pt")["step"] == 1


def test_export_takes_renderers_from_a_second_run(tmp_path: Path, two_domains: Path, tiny_checkpoint: Path, capsys):
    """Frame networks and renderers trained in two processes, put together by export, also when
    the frames run predates the rename of layers (its checkpoint holds renderer.convs.N...)."""
    import re

    from umt.checkpoint import load_model, save_checkpoint
    from umt.training.loop import train

    common = dict(preset="tiny-spectral", steps=2, workers=0, val_every=100)
    train(two_domains, tmp_path / "frames", dict(common, render_batch_size=0), "cpu")
    train(two_domains, tmp_path / "render", dict(common, batch_size=0, seed=1), "cpu")
    frames_ckpt = tmp_path / "frames" / "last.pt"
    state = load_checkpoint(frames_ckpt)
    state["model"] = {re.sub(r"layers\.(\d+)\.conv\.", r"convs.\1.", k): v for k, v in state["model"].items()}
    assert "decoders.low.renderer.convs.0.weight" in state["model"]
    save_checkpoint(frames_ckpt, state)
    argv = [
        "export",
        str(frames_ckpt),
        str(tmp_path / "m.pt"),
        "--renderers-from",
        str(tmp_path / "render" / "last.pt"),
    ]
    assert main(argv) == 0
    merged, frames, render = (
        load_model(p).state_dict() for p in (tmp_path / "m.pt", frames_ckpt, tmp_path / "render" / "last.pt")
    )
    for key, value in merged.items():
        assert torch.equal(value, (render if ".renderer." in key else frames)[key]), key
    assert main(argv[:3] + ["--renderers-from", str(tiny_checkpoint)]) == 2
    assert "both models must be spectral" in capsys.readouterr().err
    # renderers of another size and output join frames trained without them
    other = {"output": "logistic", "mixtures": 2, "residual_channels": 8, "skip_channels": 8}
    overrides = {f"wavenet.{name}": value for name, value in other.items()}
    train(two_domains, tmp_path / "render2", dict(common, batch_size=0, model_overrides=overrides), "cpu")
    assert main([*argv[:3], "--renderers-from", str(tmp_path / "render2" / "last.pt")]) == 0
    joined, render = load_model(tmp_path / "m.pt"), load_model(tmp_path / "render2" / "last.pt").state_dict()
    assert {k: getattr(joined.cfg.wavenet, k) for k in other} == other
    for key, value in joined.state_dict().items():
        assert torch.equal(value, (render if ".renderer." in key else frames)[key]), key


def test_chunk_joins_of_the_default_model_are_level(tmp_path: Path):
    """The level in the 20 ms around every join of one chunking, against another chunking's
    level at the same time (the music is the same; only the joins moved)."""
    import numpy as np

    def envelope(chunk_seconds: str) -> np.ndarray:
        out = tmp_path / chunk_seconds
        assert (
            main(["translate", str(EXAMPLE_CLIP), "--to", "piano", "--chunk-seconds", chunk_seconds, "-o", str(out)])
            == 0
        )
        audio, _ = sf.read(out / "piano" / "example.wav")
        frames = audio[: audio.size // 160 * 160].reshape(-1, 160)  # 10 ms
        return 20 * np.log10(np.sqrt((frames**2).mean(-1)) + 1e-9)

    a, b = envelope("0.5"), envelope("0.7")
    n = min(a.size, b.size)
    for own, other, step in ((a, b, 50), (b, a, 70)):
        joins = np.arange(step, n - 1, step)
        dips = np.array([own[j - 1 : j + 1].mean() - other[j - 1 : j + 1].mean() for j in joins])
        assert abs(dips.mean()) < 1.0 and dips.min() > -3.0, dips.round(1)


def test_export_stores_each_domains_sampling_and_translation_uses_it(
    tmp_path: Path, tiny_spectral_checkpoint: Path, capsys
):
    import json

    from umt.checkpoint import load_model
    from umt.translator import Sampling, Translator

    choice = tmp_path / "sampling.json"
    choice.write_text(json.dumps({"low": {"temperature": 0.0, "flutter": 0.5}}))
    assert main(["export", str(tiny_spectral_checkpoint), str(tmp_path / "m.pt"), "--sampling", str(choice)]) == 0
    model = load_model(tmp_path / "m.pt")
    device = torch.device("cpu")
    assert Translator(model, device).sampling == {"low": Sampling(0.0, 0.5), "high": Sampling(1.0, 1.0)}
    assert Translator(model, device, temperature=0.7).sampling == {
        "low": Sampling(0.7, 0.5),
        "high": Sampling(0.7, 1.0),
    }
    choice.write_text(json.dumps({"middle": {"temperature": 0.0}}))
    assert main(["export", str(tiny_spectral_checkpoint), str(tmp_path / "m.pt"), "--sampling", str(choice)]) == 2
    assert "--sampling: expected" in capsys.readouterr().err
    choice.write_text("{not json")
    assert main(["export", str(tiny_spectral_checkpoint), str(tmp_path / "m.pt"), "--sampling", str(choice)]) == 2
    assert "cannot read it as JSON" in capsys.readouterr().err
    assert (
        main(
            [
                "translate",
                str(EXAMPLE_CLIP),
                "--model",
                str(tmp_path / "m.pt"),
                "--temperature",
                "-1",
                "-o",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "--temperature -1: must not be negative" in capsys.readouterr().err


def test_export_keeps_one_domains_decoder_from_the_model_a_fine_tuning_started_from(
    tmp_path: Path, two_domains: Path, tiny_spectral_checkpoint: Path, capsys
):
    from umt.checkpoint import load_model
    from umt.training.loop import train

    options = dict(steps=2, val_every=2, val_items=2, render_batch_size=0, crop=1600, frames_only=True, workers=0)
    train(two_domains, tmp_path / "tuned", options, "cpu", base=tiny_spectral_checkpoint)
    tuned = tmp_path / "tuned" / "last.pt"
    argv = ["export", str(tuned), str(tmp_path / "m.pt"), "--decoder-from", f"low={tiny_spectral_checkpoint}"]
    assert main(argv) == 0
    joined, base, after = (load_model(p).state_dict() for p in (tmp_path / "m.pt", tiny_spectral_checkpoint, tuned))
    assert any(not torch.equal(base[k], after[k]) for k in base if k.startswith("decoders.low."))
    for key, value in joined.items():
        assert torch.equal(value, (base if key.startswith("decoders.low.") else after)[key]), key
    # exported again with another domain's decoder: the file says where both came from
    assert main(["export", str(tmp_path / "m.pt"), str(tmp_path / "m2.pt"), "--decoder-from", f"high={tuned}"]) == 0
    assert set(load_checkpoint(tmp_path / "m2.pt")["decoders_from"]) == {"low", "high"}
    # a model whose encoder differs (another run) has decoders that read another latent
    train(two_domains, tmp_path / "other", dict(preset="tiny-spectral", steps=1, workers=0, seed=3), "cpu")
    for bad, reason in ((f"low={tmp_path / 'other' / 'last.pt'}", "its encoder differs"),
                        (f"mid={tiny_spectral_checkpoint}", "need the domain 'mid'"), ("low", "expected DOMAIN=CKPT2")):  # fmt: skip
        assert main([*argv[:3], "--decoder-from", bad]) == 2
        assert reason in capsys.readouterr().err

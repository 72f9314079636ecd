"""Tokens of the latent: the token LM in both modes, fine-tuning a model with a tokenizer, and
the commands (tokenizer train / measure, lm train, export --lm, generate, translate --tokens)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from umt.checkpoint import load_checkpoint, load_model
from umt.cli import main
from umt.lm import KVCache, LMConfig, TokenLM
from umt.quantization.dependence import codebook_dependence
from umt.tokens import delayed
from umt.training.loop import train

K, N = 3, 16


def patterned(batch: int, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Codes [B, frames, K] with structure inside a frame and across frames: codebook 1 copies
    codebook 0 of the same frame, codebook 2 repeats codebook 0 of the frame before."""
    c0 = torch.randint(0, N, (batch, frames + 1), generator=generator)
    return torch.stack([c0[:, 1:], c0[:, 1:], c0[:, :-1]], dim=-1)


def test_parallel_rows_follow_the_delay_pattern():
    lm = TokenLM(LMConfig(K, N, "parallel", layers=1, heads=1, dim=8, context=5))
    codes = torch.randint(0, N, (1, 5 + lm.margin(), K))
    inputs, targets, _ = lm.sequences(codes)
    assert inputs.shape == targets.shape == (1, 5, K)
    for s in range(5):  # row s of the targets is grid row K + s: codebook j of frame K + s - j
        for j in range(K):
            assert targets[0, s, j] == codes[0, K + s - j, j]
    assert torch.equal(inputs[0, 1:], targets[0, :-1])


def test_delayed_tokens_are_what_one_step_of_the_parallel_lm_predicts():
    lm = TokenLM(LMConfig(K, N, "parallel", layers=1, heads=1, dim=8, context=5))
    codes = torch.randint(0, N, (5 + lm.margin(), K))
    _, targets, _ = lm.sequences(codes[None])
    assert torch.equal(delayed(codes)[1 : 1 + 5], targets[0])  # the grid's complete rows
    # a dependence the parallel LM cannot see within a frame shows at its delays
    first = torch.randint(0, 16, (4001,), generator=torch.Generator().manual_seed(0))
    pair = torch.stack([first[:-1], first[1:]], dim=1)  # codebook 1 of frame t - 1 is codebook 0 of frame t
    late = codebook_dependence(delayed(pair), 16)
    within = codebook_dependence(pair, 16)
    assert within["mean_mi"] < within["mean_floor"] + 0.05 and late["mean_mi"] > 3.5  # log2(16) = 4 bits


@pytest.mark.parametrize("mode", ["parallel", "joint"])
def test_lm_learns_a_pattern_and_continues_a_prompt(mode: str):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    lm = TokenLM(LMConfig(K, N, mode, layers=2, heads=2, dim=32, context=16))
    optimizer = torch.optim.Adam(lm.parameters(), lr=3e-3)
    first = lm.loss(patterned(8, 16 + lm.margin(), g)).item()
    for _ in range(400):
        loss = lm.loss(patterned(8, 16 + lm.margin(), g))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # a frame carries log N nats of news (codebook 0); the rest follows from it and the past
    assert first > 2.5 * torch.log(torch.tensor(float(N))) and loss.item() < 1.5 * torch.log(torch.tensor(float(N)))
    lm.eval()
    prompt = patterned(1, 6, g)[0]
    out = lm.continuation(prompt, 20, temperature=0.0)
    assert out.shape == (20, K)
    assert (out[:, 1] == out[:, 0]).float().mean() > 0.9  # within a frame
    previous = torch.cat([prompt[-1:, 0], out[:-1, 0]])
    assert (out[:, 2] == previous).float().mean() > 0.9  # across frames


@pytest.mark.parametrize("mode", ["parallel", "joint"])
def test_the_key_value_cache_gives_the_logits_of_the_whole_window(mode: str):
    torch.manual_seed(0)
    lm = TokenLM(LMConfig(K, N, mode, layers=2, heads=2, dim=16, context=10, dropout=0.2)).eval()  # no dropout in eval
    inputs, _, codebook = lm.sequences(torch.randint(0, N, (2, 10 + lm.margin(), K)))

    def part(lo: int, hi: int) -> tuple:  # positions lo..hi of the inputs (joint: and their codebooks)
        return (inputs[:, lo:hi],) if mode == "parallel" else (inputs[:, lo:hi], (codebook[lo:hi] - 1) % K)

    with torch.no_grad():
        whole = lm(*part(0, inputs.shape[1]))
        cache = KVCache()
        pieces = [lm(*part(0, 4), cache=cache)]  # a prompt, then one position at a time
        pieces += [lm(*part(i, i + 1), cache=cache) for i in range(4, inputs.shape[1])]
        assert cache.held() == inputs.shape[1]
        torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="window holds"):
            lm(*part(0, 1), cache=cache)
    # generation with and without the cache: the same tokens while the window has room (the
    # last step sees prompt and continuation but one), and music of the length asked for
    # beyond it, where the cached window restarts
    prompt = torch.randint(0, N, (5, K))
    room = lm.cfg.context - len(prompt) + 1
    assert torch.equal(lm.continuation(prompt, room, 0.0, cache=True), lm.continuation(prompt, room, 0.0, cache=False))
    assert lm.continuation(prompt, 4 * lm.cfg.context, 1.0, torch.Generator().manual_seed(0)).shape == (40, K)


def test_the_attention_heads_can_be_hooked():
    lm = TokenLM(LMConfig(K, N, "parallel", layers=2, heads=4, dim=16, context=8)).eval()
    seen = []
    handle = lm.blocks[1].attention.heads.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    lm.loss(torch.randint(0, N, (2, 8 + lm.margin(), K)))
    handle.remove()
    assert seen == [torch.Size([2, 8, 4, 4])]  # [B, T, heads, head_dim]


def test_fine_tuning_from_a_model_keeps_its_encoder(two_domains: Path, tiny_spectral_checkpoint: Path, tmp_path: Path):
    out = tmp_path / "ft"
    options = dict(steps=3, val_every=3, val_items=2, render_batch_size=0, crop=1600,
                   model_overrides={"codebooks": 2, "codebook_size": 8}, loss_weights={"mmd": 1.0},
                   mmd_macro_batches=2)  # fmt: skip
    train(two_domains, out, options, "cpu", base=tiny_spectral_checkpoint)
    before, after = load_checkpoint(tiny_spectral_checkpoint)["model"], load_checkpoint(out / "last.pt")
    assert after["classifier"] is None and after["train"]["freeze_encoder"]
    encoder = [k for k in before if k.startswith("encoder.")]
    assert all(torch.equal(before[k], after["model"][k]) for k in encoder)
    frames = [k for k in before if ".frames" in k]
    assert any(not torch.equal(before[k], after["model"][k]) for k in frames)
    assert load_model(out / "last.pt").tokenizer is not None
    assert not torch.equal(after["model"]["tokenizer.project_in.weight"], torch.eye(8))  # the tokenizer trains

    # decoders frozen too: only the tokenizer trains, so continuous translations stay as they were
    train(two_domains, tmp_path / "only", dict(options, freeze_decoders=True), "cpu", base=tiny_spectral_checkpoint)
    only = load_checkpoint(tmp_path / "only" / "last.pt")["model"]
    assert all(torch.equal(before[k], only[k]) for k in before)
    assert not torch.equal(only["tokenizer.project_in.weight"], torch.eye(8))
    # a run from that one fine-tunes its decoders again: it does not inherit the frozen decoders
    again = tmp_path / "again"
    train(two_domains, again, dict(steps=2, val_every=2, val_items=2, render_batch_size=0, crop=1600), "cpu",
          base=tmp_path / "only" / "last.pt")  # fmt: skip
    assert any(not torch.equal(only[k], load_checkpoint(again / "last.pt")["model"][k]) for k in frames)
    with pytest.raises(Exception, match="can change on a trained model"):
        train(two_domains, tmp_path / "other", dict(options, model_overrides={"latent_channels": 4}), "cpu",
              base=tiny_spectral_checkpoint)  # fmt: skip


def test_token_commands_end_to_end(two_domains: Path, tiny_spectral_checkpoint: Path, tmp_path: Path, capsys):
    tok = tmp_path / "tok"
    assert main(["tokenizer", "train", str(two_domains), "--from", str(tiny_spectral_checkpoint), "--out", str(tok),
                 "--codebooks", "2", "--codebook-size", "8", "--layers", "1", "--mmd-weight", "1",
                 "--mmd-macro-batches", "2", "--steps", "2"]) == 0  # fmt: skip
    assert "mmd" in capsys.readouterr().out
    model = tok / "last.pt"
    fitted = load_checkpoint(model)["model"]  # the blocks each side train (their output layers start at zero)
    assert fitted["tokenizer.blocks_in.0.out.weight"].abs().sum() > 0
    assert fitted["tokenizer.blocks_out.0.out.weight"].abs().sum() > 0
    assert (
        main(
            [
                "tokenizer",
                "measure",
                "--model",
                str(model),
                "--data",
                str(two_domains),
                "--json",
                str(tmp_path / "mi.json"),
            ]
        )
        == 0
    )
    assert "perplexity per codebook" in capsys.readouterr().out and (tmp_path / "mi.json").is_file()
    # the tokens of a split are those of its audio as float samples (int16 PCM would clip at full scale)
    from umt.data.manifest import Manifest, pcm_to_float
    from umt.tokens import split_tokens
    from umt.translator import Translator

    manifest, translator = Manifest.read(two_domains), Translator(load_model(model), torch.device("cpu"), tokens=True)
    pcm = manifest.load(manifest.entries(split="train")[0])
    assert torch.equal(split_tokens(translator, manifest, "train")[0], translator.tokenize(pcm_to_float(pcm)))
    with pytest.raises(TypeError, match="float samples"):
        translator.tokenize(pcm)

    small = [
        "--steps",
        "2",
        "--val-every",
        "1",
        "--context",
        "8",
        "--dim",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--batch-size",
        "2",
    ]
    for mode in ("parallel", "joint"):
        assert (
            main(
                [
                    "lm",
                    "train",
                    str(two_domains),
                    "--model",
                    str(model),
                    "--out",
                    str(tmp_path / mode),
                    "--mode",
                    mode,
                    *small,
                ]
            )
            == 0
        )
        assert "test" in capsys.readouterr().out
    # tokenized once into a file, the same LM run without the audio or the model
    tokens_file = tmp_path / "tokens.pt"
    argv = ["tokenizer", "tokens", "--model", str(model), "--data", str(two_domains), "-o", str(tokens_file)]
    assert main(argv) == 0 and "frames of 2 codebooks of 8" in capsys.readouterr().out
    assert main(argv) == 0 and "kept" in capsys.readouterr().out
    from umt.tokens import Tokens

    saved = Tokens.load(tokens_file)
    assert torch.load(tokens_file, weights_only=True)["splits"]["train"][0].dtype == torch.uint8
    assert all(torch.equal(a, b) for a, b in zip(saved.splits["train"], split_tokens(translator, manifest, "train")))
    assert main(["lm", "train", "--tokens", str(tokens_file), "--out", str(tmp_path / "from-file"), *small]) == 0
    assert "test" in capsys.readouterr().out
    from_prep, from_file = (load_checkpoint(tmp_path / run / "last.pt")["model"] for run in ("parallel", "from-file"))
    assert all(torch.equal(from_prep[name], from_file[name]) for name in from_prep)
    # a resumed run keeps its batch size and validation interval (before, it fell back to 16 and 250)
    from_file = tmp_path / "from-file"
    assert main(["lm", "train", "--tokens", str(tokens_file), "--out", str(from_file), "--resume", "--steps", "3"]) == 0
    assert load_checkpoint(from_file / "last.pt")["settings"] == {"batch": 2, "val_every": 1}
    older = load_checkpoint(from_file / "last.pt")  # a checkpoint from before they were kept must be told them
    del older["settings"]
    torch.save(older, from_file / "last.pt")
    capsys.readouterr()
    assert main(["lm", "train", "--tokens", str(tokens_file), "--out", str(from_file), "--resume", "--steps", "4"]) == 2
    assert "pass --batch-size and --val-every" in capsys.readouterr().err
    argv = ["lm", "train", "--tokens", str(tokens_file), "--out", str(from_file), "--resume", "--steps", "4"]
    assert main([*argv, "--batch-size", "2", "--val-every", "1"]) == 0
    capsys.readouterr()
    # a folder that holds a run is refused before the dataset is tokenized
    assert main(["lm", "train", str(two_domains), "--model", str(model), "--out", str(from_file), *small]) == 2
    assert "already holds a run" in capsys.readouterr().err
    for argv, says in [
        ([str(two_domains), "--model", str(model), "--tokens", str(tokens_file)], "one of them"),
        ([str(two_domains)], "go together"),
        (["--tokens", str(tmp_path / "none.pt")], "no such tokens file"),
        (["--tokens", str(model)], "not a tokens file"),
    ]:
        assert main(["lm", "train", *argv, "--out", str(tmp_path / "refused"), *small]) == 2
        assert says in capsys.readouterr().err
    shipped = tmp_path / "shipped.pt"
    assert (
        main(["export", str(model), str(shipped), "--lm", str(tmp_path / "parallel"), "--lm", str(tmp_path / "joint")])
        == 0
    )
    assert set(load_checkpoint(shipped)["lm"]) == {"parallel", "joint"}

    # an LM run can start from the LM a model carries: its weights and sizes, a new dropout
    carried = load_checkpoint(shipped)["lm"]["joint"]
    resumed = tmp_path / "from-shipped"
    argv = ["lm", "train", str(two_domains), "--model", str(model), "--mode", "joint", "--steps", "1",
            "--val-every", "1", "--batch-size", "2", "--lr", "1e-12"]  # fmt: skip
    assert main([*argv, "--out", str(resumed), "--from", str(shipped), "--dropout", "0.2"]) == 0
    started = load_checkpoint(resumed / "last.pt")
    assert started["config"] == {**carried["config"], "dropout": 0.2}
    assert started["started_from"] == {"path": str(shipped), "step": carried["step"]}
    for name, weight in carried["model"].items():  # a step of lr 1e-12 leaves the weights it started from
        torch.testing.assert_close(started["model"][name], weight, atol=1e-6, rtol=0)
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "wrong-size"), "--from", str(shipped), "--dim", "32"]) == 2
    assert "--dim 32: the LM of" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "no-lm"), "--from", str(model)]) == 2
    assert "carries no joint token LM" in capsys.readouterr().err
    assert main([*argv, "--out", str(resumed), "--from", str(shipped), "--resume"]) == 2
    assert "choose one" in capsys.readouterr().err

    prompt = min((two_domains.parent / "src" / "low").glob("*.wav"))
    for mode in ("parallel", "joint"):
        out = tmp_path / f"{mode}.wav"
        argv = [
            "generate",
            "--prompt",
            str(prompt),
            "--seconds",
            "0.3",
            "--to",
            "high",
            "-o",
            str(out),
            "--model",
            str(shipped),
        ]
        assert main([*argv, "--mode", mode]) == 0
        assert sf.info(out).frames == 0.3 * 16000
        capsys.readouterr()
        assert main([*argv, "--mode", mode]) == 0 and "kept" in capsys.readouterr().out  # an existing output stays
    hostile = tmp_path / "nan.wav"  # the prompt goes through the same reader as translate's inputs
    audio, rate = sf.read(prompt, dtype="float32")
    audio[100:110] = np.nan
    sf.write(hostile, audio, rate, subtype="FLOAT")
    assert main(["generate", "--prompt", str(hostile), "--seconds", "0.3", "--to", "high", "-o", str(tmp_path / "nan-out.wav"),
                 "--model", str(shipped)]) == 2  # fmt: skip
    assert "nan.wav: 10 non-finite sample(s)" in capsys.readouterr().err and not (tmp_path / "nan-out.wav").exists()

    assert (
        main(
            ["translate", str(prompt), "-o", str(tmp_path / "tr"), "--model", str(shipped), "--tokens", "--to", "high"]
        )
        == 0
    )
    assert (tmp_path / "tr" / "high" / prompt.name).is_file()

    # SMITIN probes on the model's sites and its LM's heads, then steering with them
    src = two_domains.parent / "src"
    probe = tmp_path / "high.pt"
    assert main(["probe", "train", "--with", str(src / "high"), "--without", str(src / "low"), "--trait", "high",
                 "--model", str(shipped), "-o", str(probe), "--clip-seconds", "0.5"]) == 0  # fmt: skip
    assert "lm.0.0" in probe.with_suffix(".md").read_text() and probe.with_suffix(".png").is_file()
    capsys.readouterr()
    steered = tmp_path / "steered.wav"
    assert main(["generate", "--prompt", str(prompt), "--seconds", "0.3", "--to", "high", "-o", str(steered), "--model", str(shipped),
                 "--steer", f"{probe}:3"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "steering towards 'high' at alpha 3:" in out and "from lm.0.0" in out and "monitored, stops at C >=" in out
    assert "the nudge applied at" in out and steered.is_file()
    assert main(["translate", str(prompt), "-o", str(tmp_path / "st"), "--model", str(shipped), "--to", "high", "--steer", str(probe),
                 "--no-steer-monitor"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "from frames.high.0" in out and "not monitored" in out and (tmp_path / "st" / "high" / prompt.name).is_file()
    # a model site's probe reads the mean over the clips it was trained on (0.5 s = 50 frames), an LM head's the last step
    from umt.steering import load_probes

    windows = {p.site: p.window for p in load_probes(probe)[1]}
    assert windows["latent"] == 51 and {w for site, w in windows.items() if site.startswith("lm.")} == {1}

    # mistakes get one line
    bad = [
        ["generate", "--prompt", str(prompt), "--seconds", "1", "--to", "high", "-o", str(tmp_path / "x.wav"),
         "--model", str(tiny_spectral_checkpoint)],  # no tokenizer
        ["generate", "--prompt", str(prompt), "--seconds", "1", "--to", "high", "-o", str(tmp_path / "x.wav"),
         "--model", str(model)],  # carries no LM
        ["generate", "--prompt", str(prompt), "--seconds", "1", "--to", "high", "-o", str(tmp_path / "x.wav"),
         "--model", str(model), "--lm", str(model)],  # not an LM
        ["generate", "--prompt", str(tmp_path / "none.wav"), "--seconds", "1", "--to", "high", "-o", str(tmp_path / "x.wav"),
         "--model", str(shipped)],  # no prompt
        ["generate", "--prompt", str(prompt), "--seconds", "1", "--to", "violin", "-o", str(tmp_path / "x.wav"), "--model", str(shipped)],
        ["generate", "--prompt", str(prompt), "--seconds", "1", "--to", "high", "-o", str(tmp_path / "x.mp3"), "--model", str(shipped)],
        ["translate", str(prompt), "-o", str(tmp_path / "t2"), "--model", str(tiny_spectral_checkpoint), "--tokens"],
        ["lm", "train", str(two_domains), "--model", str(tiny_spectral_checkpoint), "--out", str(tmp_path / "lm2")],
        ["translate", str(prompt), "-o", str(tmp_path / "t3"), "--model", str(shipped), "--steer", str(model)],  # not a probe
        ["translate", str(prompt), "-o", str(tmp_path / "t4"), "--model", str(shipped), "--steer", f"{probe}x:2"],  # no file
        ["probe", "train", "--with", str(tmp_path / "nowhere"), "--without", str(src / "low"), "--trait", "x",
         "--model", str(shipped), "-o", str(tmp_path / "p.pt")],
        ["tokenizer", "train", str(two_domains), "--from", str(tiny_spectral_checkpoint), "--out", str(tmp_path / "tk"),
         "--mmd-macro-batches", "0"],
        ["tokenizer", "train", str(two_domains), "--from", str(tiny_spectral_checkpoint), "--out", str(tmp_path / "tk"),
         "--layers", "-1"],
        ["tokenizer", "train", str(two_domains), "--from", str(tiny_spectral_checkpoint), "--out", str(tmp_path / "tk"),
         "--loss-weight", "junk"],
        ["lm", "train", str(two_domains), "--model", str(shipped), "--out", str(tmp_path / "lm3"), "--patience", "-1"],
        ["lm", "train", str(two_domains), "--model", str(shipped), "--out", str(tmp_path / "lm3"), "--dropout", "1.5"],
    ]  # fmt: skip
    for argv in bad:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "x.wav").exists()
    assert not (tmp_path / "t3").exists() and not (tmp_path / "t4").exists()  # bad --steer flags: no output folder made
    assert not (tmp_path / "tk").exists() and not (tmp_path / "lm3").exists()

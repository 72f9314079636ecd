import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tone

from umt.checkpoint import load_checkpoint, load_model, save_checkpoint
from umt.cli import main
from umt.data.crops import CropDataset, MultiDomainCrops, crop_loader
from umt.data.manifest import Manifest
from umt.data.prepare import prepare
from umt.errors import UserError
from umt.model import UMT
from umt.presets import preset
from umt.training.config import TrainConfig, build_run
from umt.training.loop import train
from umt.training.step import train_step
from umt.validation import validate

CPU = torch.device("cpu")
QUICK = dict(preset="tiny", crop=400, batch_size=2, workers=0, val_items=4, val_every=5, audio_every=5)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_overfits_a_tiny_dataset(two_domains: Path, tmp_path: Path):
    options = dict(QUICK, steps=150, crop=800, batch_size=4, lr=3e-3, val_every=1000, audio_every=1000)
    run = train(two_domains, tmp_path / "run", options, "cpu")
    manifest = Manifest.read(two_domains)
    on_train = {d: CropDataset(manifest, d, "train", 800, augment=False) for d in manifest.domains}
    ce = validate(run.model, run.classifier, on_train, items=16, batch_size=8)["ce"]
    assert ce < 0.5 * math.log(256), f"teacher-forced CE {ce:.2f} nats did not fall well below ln 256"


def mean_classifier_accuracy(
    manifest: Manifest, confusion_weight: float, steps: int = 200, confusion: str = "maximize"
) -> float:
    cfg = preset("tiny", manifest.domains)
    tcfg = TrainConfig.layered(
        {"preset": "tiny", "batch_size": 4, "crop": 800, "lr": 3e-3, "confusion": confusion},
        {"loss_weights": {"confusion": confusion_weight}},
    )
    run = build_run(cfg, tcfg, cfg.domains, CPU, None)
    data = MultiDomainCrops([CropDataset(manifest, d, "train", 800, seed=0) for d in manifest.domains])
    accuracies = []
    for items in crop_loader(data, 4, steps=steps):
        batch = {key: value.transpose(0, 1) for key, value in items.items()}
        stats = train_step(run, run.model, run.classifier, batch, tcfg, None, CPU)
        accuracies.append(stats["classifier_acc"])
    return float(np.mean(accuracies[-50:]))


@pytest.mark.parametrize("confusion", ["maximize", "uniform"])
def test_domain_confusion_pushes_the_classifier_towards_chance(two_domains: Path, confusion: str):
    manifest = Manifest.read(two_domains)
    without = mean_classifier_accuracy(manifest, 0.0)
    adversarial = mean_classifier_accuracy(manifest, 1.0, confusion=confusion)
    assert without > 0.9  # the latent tells the two domains apart
    assert abs(adversarial - 0.5) < abs(without - 0.5) - 0.3


def test_resume_continues_the_same_run(two_domains: Path, tmp_path: Path):
    train(two_domains, tmp_path / "straight", dict(QUICK, steps=10), "cpu")
    train(two_domains, tmp_path / "halves", dict(QUICK, steps=5), "cpu")
    assert load_checkpoint(tmp_path / "halves" / "last.pt")["step"] == 5
    train(two_domains, tmp_path / "halves", dict(steps=10), "cpu", resume=True)
    a, b = weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "halves" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = load_checkpoint(tmp_path / "halves" / "last.pt")
    assert state["step"] == 10 and state["train"]["crop"] == 400


@pytest.mark.parametrize(
    "recipe",
    [
        ["--preset", "tiny", "--crop", "400"],
        # the realism critics are not DDP modules: their gradients are averaged by hand
        ["--preset", "tiny-spectral", "--crop", "1600", "--render-batch-size", "0", "--realism-weight", "1"],
    ],
    ids=["wavenet", "spectral-realism"],
)
def test_ddp_two_processes_match_one(two_domains: Path, tmp_path: Path, recipe: list[str]):
    common = [*recipe, "--steps", "3", "--workers", "0", "--val-every", "100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = [
        sys.executable,
        "-m",
        "umt",
        "train",
        str(two_domains),
        "--out",
        str(tmp_path / "one"),
        "--batch-size",
        "2",
    ]
    subprocess.run([*single, *common], check=True, env=env, capture_output=True)
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "umt", "train"]
    result = subprocess.run(
        [*ddp, str(two_domains), "--out", str(tmp_path / "two"), "--batch-size", "1", "--device", "cpu", *common],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    one, two = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert ("--realism-weight" in recipe) == (one["critics"] is not None)
    for part in ("model", "critics"):
        for key in one[part] or {}:
            torch.testing.assert_close(one[part][key], two[part][key], rtol=1e-4, atol=1e-5)


def test_add_domain_trains_only_the_new_decoder(two_domains: Path, tmp_path: Path):
    train(two_domains, tmp_path / "base", dict(QUICK, steps=3), "cpu")
    src = tmp_path / "src"
    for i in range(4):
        path = src / "mid" / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(1.0, 16000, 600 + 50 * i, 0.5), 16000)
    prepare(src, tmp_path / "prep_mid", 16000, {"train": 0.5, "val": 0.5, "test": 0.0})
    base = tmp_path / "base" / "last.pt"
    train(tmp_path / "prep_mid", tmp_path / "added", dict(steps=4, val_every=2), "cpu", base=base, add_domain="mid")

    before, after = weights(base), weights(tmp_path / "added" / "last.pt")
    assert load_checkpoint(tmp_path / "added" / "last.pt")["config"]["domains"] == ["high", "low", "mid"]
    for key, value in before.items():
        assert torch.equal(value, after[key]), key  # encoder and existing decoders untouched
    fresh = load_model(tmp_path / "added" / "last.pt")
    assert set(fresh.decoders) == {"high", "low", "mid"}
    with pytest.raises(Exception, match="already has"):
        train(
            tmp_path / "prep_mid",
            tmp_path / "again",
            dict(steps=1),
            "cpu",
            base=tmp_path / "added" / "last.pt",
            add_domain="mid",
        )


def test_cli_train_writes_checkpoints_and_logs(two_domains: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    argv = ["train", str(two_domains), "--out", str(out), "--preset", "tiny", "--crop", "400", "--workers", "0"]
    assert main([*argv, "--steps", "4", "--val-every", "2"]) == 0
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 4 and state["config"]["domains"] == ["high", "low"]
    assert (out / "best.pt").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    printed = capsys.readouterr().out
    assert "val step 4" in printed and "bits" in printed

    assert main([*argv, "--steps", "6"]) == 2  # would overwrite the run
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--steps", "6", "--resume"]) == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 6


def test_cli_train_bad_inputs(tmp_path: Path, two_domains: Path, capsys):
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "umt prepare" in capsys.readouterr().err
    assert main(["train", str(two_domains), "--out", str(tmp_path / "r"), "--crop", "450", "--preset", "tiny"]) == 2
    assert "--crop 450" in capsys.readouterr().err
    assert main(["train", str(two_domains), "--out", str(tmp_path / "r"), "--steps", "0", "--preset", "tiny"]) == 2
    assert "--steps 0: must be positive" in capsys.readouterr().err
    assert main(["train", str(two_domains), "--out", str(tmp_path / "r"), "--device", "foo", "--preset", "tiny"]) == 2
    assert "--device foo: choose auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert (
        main(["train", str(two_domains), "--out", str(tmp_path / "r2"), "--from", str(bad), "--add-domain", "x"]) == 2
    )
    assert "bad.pt" in capsys.readouterr().err


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoints_cannot_run_code(tmp_path: Path):
    evil = tmp_path / "evil.pt"
    torch.save({"config": {}, "model": {}, "payload": Payload()}, evil)
    with pytest.raises(UserError, match=r"evil\.pt: not a umt checkpoint \(torch.load with weights_only"):
        load_checkpoint(evil)


def test_a_file_or_folder_that_is_not_a_checkpoint_gets_one_line(tmp_path: Path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    wav = tmp_path / "song.pt"
    sf.write(wav, np.zeros(800, dtype=np.float32), 16000, format="WAV")
    config_only = tmp_path / "config.pt"
    torch.save({"config": {"domains": ["a"], "encoder_channels": "wide"}, "model": {}}, config_only)
    no_weights = tmp_path / "no_weights.pt"
    torch.save({"config": preset("tiny", ["a"]).to_dict(), "model": {}}, no_weights)
    for path, reason in ((junk, "not a umt checkpoint"), (wav, "not a umt checkpoint"), (tmp_path, "a folder without best.pt"),
                         (config_only, "its config does not describe a model"),
                         (no_weights, "weights do not fit the stored config \\(Missing key")):  # fmt: skip
        with pytest.raises(UserError, match=reason) as error:
            load_model(path)
        assert "\n" not in str(error.value)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(
        run / "best.pt", {"config": preset("tiny", ["a"]).to_dict(), "model": UMT(preset("tiny", ["a"])).state_dict()}
    )
    assert load_model(run).cfg.domains == ["a"]  # a run folder means its best.pt


def test_ctrl_c_saves_the_run_before_its_first_checkpoint_and_resume_continues(two_domains: Path, tmp_path: Path):
    import signal

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "umt", "train", str(two_domains), "--out", str(out), "--preset", "tiny", "--crop", "400",
            "--workers", "0", "--steps", "100000", "--log-every", "1", "--val-every", "100000"]  # fmt: skip
    job = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in job.stdout:  # wait for the first steps
        if line.startswith("step 3/"):
            break
    assert not (out / "last.pt").exists()  # --checkpoint-every 250: nothing saved yet
    job.send_signal(signal.SIGINT)
    rest, err = job.communicate(timeout=60)
    assert job.returncode == 130, err
    assert "interrupted at step" in rest and "Traceback" not in err
    step = torch.load(out / "last.pt", weights_only=True)["step"]
    assert step >= 3
    assert (
        main(["train", str(two_domains), "--out", str(out), "--resume", "--steps", str(step + 2), "--workers", "0"])
        == 0
    )
    assert torch.load(out / "last.pt", weights_only=True)["step"] == step + 2


def test_model_settings_over_the_preset(two_domains: Path, tmp_path: Path, capsys):
    argv = ["train", str(two_domains), "--out", str(tmp_path / "run"), "--preset", "tiny-spectral", "--steps", "1",
            "--workers", "0", "--render-batch-size", "0"]  # fmt: skip
    assert main([*argv, "--model-set", "classifier.context=2", "--model-set", "latent_channels=4"]) == 0
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["config"]["classifier"]["context"] == 2 and state["config"]["latent_channels"] == 4
    assert any(k.startswith("context.") for k in state["classifier"])  # the classifier reads the latent over time
    assert main([*argv, "--resume", "--steps", "2", "--model-set", "latent_channels=8"]) == 2
    assert "applies to a new run" in capsys.readouterr().err
    for bad in ("latent_channels=wide", "no_such=1", "latent_channels"):
        assert main([*argv[:3], str(tmp_path / "other"), *argv[4:], "--model-set", bad]) == 2
        assert "--model-set" in capsys.readouterr().err


def test_a_full_disk_keeps_the_last_good_checkpoint_and_ends_in_one_line(two_domains: Path, tmp_path: Path):
    """Files beyond a size limit cannot be written (RLIMIT_FSIZE: as when the disk is full):
    the resumed run stops at its first checkpoint with one line, and the previous one stays."""
    import resource
    import signal

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "umt", "train", str(two_domains), "--out", str(out), "--preset", "tiny", "--crop", "400",
            "--workers", "0", "--val-every", "100000", "--checkpoint-every", "2"]  # fmt: skip
    assert subprocess.run([*argv, "--steps", "2"], capture_output=True, check=False).returncode == 0
    before = (out / "last.pt").read_bytes()
    size = len(before)

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails (EFBIG) instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    job = subprocess.run(
        [*argv, "--steps", "6", "--resume"], capture_output=True, text=True, preexec_fn=small_files, check=False
    )
    assert job.returncode == 2 and "Traceback" not in job.stderr
    last = job.stderr.strip().splitlines()[-1]
    assert last.startswith(f"umt train: error: {out / 'last.pt'}: cannot write the checkpoint (") and last.endswith(
        "); the previous one is kept"
    )
    assert (out / "last.pt").read_bytes() == before and torch.load(out / "last.pt", weights_only=True)["step"] == 2
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_loss_weights_layer_kind_by_kind_and_read_runs_from_before_the_map():
    from umt import losses

    stored = {"preset": "tiny", "confusion_weight": 0.02, "chroma_weight": 0.3}  # a run from before loss_weights
    tcfg = TrainConfig.layered(stored, {"loss_weights": {"mmd": 1.0}}, {"loss_weights": {"confusion": 0.0}})
    assert tcfg.loss_weights == {**losses.WEIGHTS, "translation_chroma": 0.3, "mmd": 1.0, "confusion": 0.0}
    terms = {"ce/a": torch.tensor(2.0), "confusion": torch.tensor(-1.0), "mmd": torch.tensor(0.5)}
    assert float(losses.weighted_sum(terms, tcfg.loss_weights)) == 2.0 + 0.5  # confusion weighs nothing here
    assert losses.parse_weights(["spectrum=2", "mmd=0"]) == {"spectrum": 2.0, "mmd": 0.0}
    with pytest.raises(UserError, match="--loss-weight chroma=1: expected KIND=W"):
        losses.parse_weights(["chroma=1"])


def test_a_solver_with_patience_stops_once_validation_stops_improving(tmp_path: Path):
    from umt.training.solver import Solver

    class Scripted(Solver):  # validation scores read from a list, one a step
        def __init__(self, scores: list[float], patience: int):
            super().__init__(tmp_path / f"run{patience}", steps=len(scores), checkpoint_every=100, val_every=1,
                             patience=patience)  # fmt: skip
            self.scores = iter(scores)

        def run_step(self, batch) -> dict[str, float]:
            return {}

        def validate(self) -> float:
            return next(self.scores)

        def state(self) -> dict:
            return {"step": self.step, "best": self.best, "since_best": self.since_best}

    scores = [3.0, 2.0, 2.5, 2.6, 1.0, 0.5]
    patient = Scripted(scores, patience=2)
    patient.fit(range(len(scores)))
    assert (patient.step, patient.best, patient.since_best) == (4, 2.0, 2)  # two worse in a row after the best
    assert torch.load(patient.out / "last.pt", weights_only=True)["step"] == 4  # saved where it stopped
    resumed = Scripted(scores[4:], patience=2)  # resumed where patience ended it: no step more
    resumed.step, resumed.best, resumed.since_best = 4, 2.0, 2
    resumed.fit(range(2))
    assert resumed.step == 4
    runs_all = Scripted(scores, patience=0)
    runs_all.fit(range(len(scores)))
    assert (runs_all.step, runs_all.best) == (6, 0.5)


def test_the_independence_terms_weight_counts_past_the_gradient_clip(two_domains: Path):
    """The loss between codebooks joins the gradient after the clip, as in its source: clipped
    with the rest, every weight came down to the clip's norm."""
    manifest = Manifest.read(two_domains)
    cfg = preset("tiny", manifest.domains)
    cfg.tokenizer.codebooks, cfg.tokenizer.codebook_size, cfg.tokenizer.layers = 2, 8, 1
    data = MultiDomainCrops([CropDataset(manifest, d, "train", 800, seed=0) for d in manifest.domains])
    batch = {key: value.transpose(0, 1) for key, value in next(iter(crop_loader(data, 4, steps=1))).items()}
    norms = {}
    for weight in (0.0, 1000.0):
        tcfg = TrainConfig.layered(
            {"preset": "tiny", "batch_size": 4, "crop": 800, "clip": 1e-4, "mmd_macro_batches": 1,
             "freeze_encoder": True, "freeze_decoders": True},
            {"loss_weights": {"mmd": weight}},
        )  # fmt: skip
        run = build_run(cfg, tcfg, cfg.domains, CPU, None)
        stats = train_step(run, run.model, run.classifier, batch, tcfg, None, CPU)
        assert math.isfinite(stats["mmd"])  # measured at either weight
        trained = [p.grad for p in run.model.parameters() if p.requires_grad and p.grad is not None]
        norms[weight] = torch.linalg.vector_norm(torch.stack([g.norm() for g in trained])).item()
    assert norms[0.0] <= 1.01e-4  # the rest of the loss, clipped
    assert norms[1000.0] > 100 * norms[0.0]  # the independence term, not

"""Checkpoints: plain dicts of tensors and numbers, written atomically, read with weights_only=True.

weights_only=True means a checkpoint downloaded from anywhere can only contain data: the
unpickler refuses anything that would run code.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import torch

from umt.config import ModelConfig
from umt.errors import UserError
from umt.fileio import atomic_path
from umt.lm import LM_KIND
from umt.model import UMT

DEFAULT_MODEL = Path(__file__).parent / "assets" / "default.pt"
EXAMPLE_CLIP = Path(__file__).parent / "assets" / "example.flac"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically: when the write fails (a full disk), the file that was
    there is kept as it was, and UserError says so in one line."""
    try:
        with atomic_path(path) as tmp:
            torch.save(on_cpu(state), tmp)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as a RuntimeError
        if isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        else:
            reason = f"{str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__}: is the disk full?"
        kept = "the previous one is kept" if path.exists() else "nothing was written"
        raise UserError(f"{path}: cannot write the checkpoint ({reason}); {kept}") from None


def on_cpu(value: Any) -> Any:
    """`value` with every tensor in its dicts, lists and tuples on the CPU: a checkpoint written
    on a GPU then loads with a plain torch.load(weights_only=True) on a machine without one
    (torch.save copies each storage to the host anyway, so this costs nothing more)."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(on_cpu(item) for item in value)
    return value


FOLDER_CHECKPOINTS = ("best.pt", "judge.pt")  # what a folder given as a checkpoint is taken to mean


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its best.pt) or judge folder (its judge.pt)."""
    path = Path(path)
    if path.is_dir():
        for name in FOLDER_CHECKPOINTS:
            if (path / name).is_file():
                return path / name
        raise UserError(f"{path}: a folder without {' or '.join(FOLDER_CHECKPOINTS)}")
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    return path


def read_torch_file(path: Path, what: str, device: str | torch.device = "cpu") -> Any:
    """torch.load(weights_only=True) of `path`; any failure is one line: not a `what`."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 (a file that is not a torch checkpoint fails in many ways: all say the same)
        first = str(exc).strip().split(". ")[0].splitlines()[0][:100] if str(exc).strip() else ""
        reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        raise UserError(f"{path}: not a {what} (torch.load with weights_only: {reason})") from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    path = find_checkpoint(path)
    state = read_torch_file(path, "umt checkpoint", device)
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("config"), dict)
        or not isinstance(state.get("model"), dict)
    ):
        raise UserError(f"{path}: not a umt checkpoint (no config or model weights)")
    if state.get("kind", "umt") == "umt":
        for part in ("model", "classifier"):
            if isinstance(state.get(part), dict):
                state[part] = upgrade_weights(state[part])
    return state


_OLD_LAYER = re.compile(r"^((?:[^.]+\.)*?)(convs|mixes|res_skip)\.(\d+)\.(.+)$")
_LAYER_PART = {"convs": "conv", "mixes": "mix", "res_skip": "res_skip"}


def upgrade_weights(weights: dict[str, Any]) -> dict[str, Any]:
    """A model's (or classifier's) weights as any earlier version stored them, under today's
    names: the semitone transform's kernels (now rebuilt from the settings) dropped; the
    encoder's layers under encoder.stack (before the stack was its own module); and layers
    from before they were modules, PREFIX.convs.<i>.<rest> -> PREFIX.layers.<i>.conv.<rest>
    (mixes.<i> -> layers.<i>.mix, res_skip.<i> -> layers.<i>.res_skip). The one place that
    knows old checkpoints."""
    upgraded = {}
    for key, value in weights.items():
        if key.startswith("spectrum.cqt."):
            continue
        if key.startswith(("encoder.convs.", "encoder.mixes.")):
            key = "encoder.stack." + key.removeprefix("encoder.")
        old = _OLD_LAYER.match(key)
        if old:
            prefix, part, index, rest = old.groups()
            key = f"{prefix}layers.{index}.{_LAYER_PART[part]}.{rest}"
        upgraded[key] = value
    return upgraded


def load_model_state(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint that holds a translation model (not, say, a judge written by `umt judge train`)."""
    state = load_checkpoint(path, device)
    if state.get("kind", "umt") != "umt":
        raise UserError(f"{path}: a {state['kind']} checkpoint, not a translation model")
    return state


def load_lm_state(path: str | Path) -> dict[str, Any]:
    """A checkpoint that holds a token LM (`umt lm train`; umt.tokens.load_lm builds it)."""
    state = load_checkpoint(path)
    if state.get("kind") != LM_KIND:
        raise UserError(f"{path}: not a token LM (train one with `umt lm train`)")
    return state


def load_model(path: str | Path, device: str | torch.device = "cpu") -> UMT:
    """The translation model of a checkpoint, in eval mode."""
    state = load_model_state(path, device)
    try:
        model = UMT(ModelConfig.from_dict(state["config"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: its config does not describe a model ({type(exc).__name__}: {exc})") from None
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]  # a title, then what is wrong
        raise UserError(f"{path}: weights do not fit the stored config ({lines[-1][:120]})") from None
    return model.to(device).eval()


def export_model(
    source: Path, target: Path, renderers_from: Path | None = None, lms: list[Path] = (), sampling: dict | None = None,
    decoders_from: dict[str, Path] | None = None,
) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """Write a model-only checkpoint (config, weights, training step; no optimiser state) for
    sharing or shipping; into target/<source name> when target is a folder. Returns what was written.

    lms: token LMs (`umt lm train` runs, or models that carry some) the model carries, by mode,
    for `umt generate`.

    sampling: how translation renders each domain by default ({domain: {"temperature": T,
    "flutter": F}}, ModelConfig.sampling), replacing the source's.

    renderers_from: a spectral model whose WaveNet renderers replace those of `source` (the two
    halves of the spectral recipe trained in separate processes, one per core), with their own
    sizes and output (their config's `wavenet` part). Weights go through the models, so checkpoints written
    before a rename of layers join correctly.

    decoders_from: {domain: model}: that domain's whole decoder (frame network and renderer) from
    another model of the same settings and the same encoder weights (e.g. the run a frames-only
    fine-tuning started from), so one domain can keep the decoder it had."""
    state = load_model_state(source)
    if target.is_dir():
        target = target / source.name
    model = load_model(source)
    # where the source's own decoders came from, when it was exported so: kept unless replaced here
    extra = {"decoders_from": dict(state["decoders_from"])} if state.get("decoders_from") else {}
    if renderers_from is not None:
        other = load_model(renderers_from)
        _check_renderers(model.cfg, other.cfg, renderers_from)
        cfg = dataclasses.replace(model.cfg, wavenet=copy.deepcopy(other.cfg.wavenet))
        joined = UMT(cfg)
        joined.load_state_dict({k: v for k, v in model.state_dict().items() if ".renderer." not in k}, strict=False)
        for domain in cfg.domains:
            joined.decoders[domain].renderer.load_state_dict(other.decoders[domain].renderer.state_dict())
        model = joined
        extra["renderers_from"] = {"path": str(renderers_from), "step": load_model_state(renderers_from).get("step")}
    for domain, path in (decoders_from or {}).items():
        other = load_model(path)
        _check_same_encoder(model, other, domain, path)
        model.decoders[domain].load_state_dict(other.decoders[domain].state_dict())
        extra.setdefault("decoders_from", {})[domain] = {"path": str(path), "step": load_model_state(path).get("step")}
    for path in lms:
        carried = load_checkpoint(path).get("lm")
        for lm_state in carried.values() if carried else [load_lm_state(path)]:
            if (lm_state["config"]["codebooks"], lm_state["config"]["codebook_size"]) != (
                model.cfg.tokenizer.codebooks,
                model.cfg.tokenizer.codebook_size,
            ):
                raise UserError(f"--lm {path}: trained on another tokenizer than the model's")
            keep = ("kind", "config", "model", "step", "val_bits", "test_bits", "started_from")
            extra.setdefault("lm", {})[lm_state["config"]["mode"]] = {k: v for k, v in lm_state.items() if k in keep}
    if sampling is not None:
        unknown = [d for d in sampling if d not in model.cfg.domains]
        fields = {"temperature", "flutter"}
        if unknown or not all(isinstance(v, dict) and set(v) <= fields for v in sampling.values()):
            raise UserError(
                f"--sampling: expected {{domain: {{temperature, flutter}}}} for the domains {', '.join(model.cfg.domains)}"
            )
        model.cfg.sampling = sampling
    model_only = {"config": model.cfg.to_dict(), "model": model.state_dict(), "step": state.get("step"),
                  "train": state.get("train"), **extra}  # fmt: skip
    save_checkpoint(target, model_only)
    return target, model_only


def _check_same_encoder(model: UMT, other: UMT, domain: str, path: Path) -> None:
    """A decoder reads the latent of the encoder it was trained on: `other` must have the
    model's settings, `domain`, and the very same encoder weights."""
    where = f"--decoder-from {domain}={path}"
    if domain not in model.cfg.domains or domain not in other.cfg.domains:
        raise UserError(f"{where}: both models need the domain {domain!r}")
    if other.cfg.to_dict() | {"sampling": None} != model.cfg.to_dict() | {"sampling": None}:
        raise UserError(f"{where}: a model of other settings")
    mine, theirs = model.encoder.state_dict(), other.encoder.state_dict()
    if not all(torch.equal(mine[k], theirs[k]) for k in mine):
        raise UserError(f"{where}: its encoder differs, so its decoders read another latent")


def _check_renderers(config: ModelConfig, other: ModelConfig, path: Path) -> None:
    if not (config.spectral and other.spectral):
        raise UserError(f"--renderers-from {path}: both models must be spectral (frame networks and renderers)")
    shared = ("domains", "sample_rate", "pool", "spectrum")  # what renderers and frames agree on
    differ = [f for f in shared if getattr(config, f) != getattr(other, f)]
    if differ:
        raise UserError(f"--renderers-from {path}: its renderers differ in {', '.join(differ)}")

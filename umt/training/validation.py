"""Validation: teacher-forced losses per domain with the conditioning gain, and the
TensorBoard audio clips of the paper recipe."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from umt.audio import mu_law_decode
from umt.data.crops import CropDataset
from umt.model import UMT, shift_right
from umt.modules.classifier import DomainClassifier
from umt.runtime import CPU, autocast
from umt.training.config import Run

VAL_BATCH = 8  # validation crops per forward pass


CONDITIONING = (
    "inputs",
    "levels_in",
    "render_levels",
)  # batch keys a decoder is conditioned on (besides its excitation)


@torch.no_grad()
def validate(
    model: UMT, classifier: DomainClassifier | None, val_sets: dict[str, Dataset], items: int, batch_size: int,
    dtype=None, device: torch.device = CPU,
) -> dict[str, float]:  # fmt: skip
    """Teacher-forced losses per domain on `items` crops of each dataset (UMT.forward: "ce/D"
    in nats per sample and "bits/D"; "spectrum/D" for frame networks), the conditioning gain
    of each ("gain/ce/D": the loss with another clip's conditioning minus the loss with the
    clip's own; near 0 means the decoder has stopped listening), the classifier's accuracy, and
    for frame networks of several domains "translation_chroma/D": D's crops translated by every
    other domain's frame network, their mean chroma distance to the crop (not in the score)."""
    was_training = model.training
    model.eval()
    totals: dict[str, list[float]] = {}  # key -> [sum of batch means x batch size, crops]

    def add(key: str, value: float, crops: int) -> None:
        total = totals.setdefault(key, [0.0, 0])
        total[0] += value * crops
        total[1] += crops

    correct = total = 0
    for domain, dataset in val_sets.items():
        others = [d for d in model.cfg.domains if d != domain]  # translation targets of this domain's crops
        for first in range(0, items, batch_size):
            batch = _collate([dataset[i] for i in range(first, min(first + batch_size, items))], device)
            crops = next(iter(batch.values())).shape[1]
            with autocast(dtype, device):
                out = model(batch, [domain])
                shuffled = model(_roll_conditioning(batch), [domain]) if crops > 1 else None
            for key, value in out.losses.items():
                add(key, value.item(), crops)
                if shuffled is not None:
                    add(f"gain/{key}", shuffled.losses[key].item() - value.item(), crops)
            if "levels" in batch and others:
                with autocast(dtype, device):
                    distance = sum(model.translation_chroma(out.latent, batch["levels"][0], t) for t in others) / len(
                        others
                    )
                add(f"translation_chroma/{domain}", distance.item(), crops)
            if classifier is not None and out.latent is not None:
                with autocast(dtype, device):
                    guess = classifier(out.latent).argmax(-1)
                correct += int((guess == model.cfg.domains.index(domain)).sum())
                total += guess.numel()
    sums = {key: value / crops for key, (value, crops) in totals.items()}
    results = dict(sums)
    for key in [k for k in sums if k.startswith("ce/")]:
        results["bits/" + key[3:]] = sums[key] / math.log(2)
    kinds = {k.split("/")[0] for k in sums if not k.startswith("gain/")}
    for kind in kinds:
        results[kind] = sum(v for k, v in sums.items() if k.startswith(kind + "/")) / len(val_sets)
    # the validation score (best.pt): the reconstruction losses' means over domains, summed
    results["score"] = sum(results[kind] for kind in kinds if kind != "translation_chroma")
    if total:
        results["classifier_acc"] = correct / total
    model.train(was_training)
    return results


def _collate(items: list, device: torch.device) -> dict[str, torch.Tensor]:
    """Dataset items of one domain -> a batch dict of [1, B, ...] tensors (UMT.forward's layout)."""
    if isinstance(items[0], dict):
        return {k: torch.stack([item[k] for item in items])[None].to(device) for k in items[0]}
    inputs, targets = (torch.stack(parts)[None].to(device) for parts in zip(*items))
    return {"inputs": inputs, "targets": targets}


def _roll_conditioning(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same targets, each conditioned on the next clip's conditioning (and excitation)."""
    rolled = {k: torch.roll(v, 1, dims=1) if k in CONDITIONING else v for k, v in batch.items()}
    if "amplitude" in batch:
        rolled["given_amplitude"], rolled["given_phase"] = (
            torch.roll(batch[k], 1, dims=1) for k in ("amplitude", "phase")
        )
    return rolled


@torch.no_grad()
def teacher_forced_clips(run: Run, val_sets: dict[str, CropDataset], device) -> dict[str, torch.Tensor]:
    """Per domain: the input crop and a reconstruction sampled from the decoder's
    teacher-forced distribution (each sample given the true past), as float audio."""
    run.model.eval()
    clips = {}
    for domain, dataset in val_sets.items():
        inputs, targets = (t.unsqueeze(0).to(device) for t in dataset[0])
        logits = run.model.decoders[domain](shift_right(targets), run.model.quantize(run.model.encode(inputs))[0])
        sampled = torch.distributions.Categorical(logits=logits.float()).sample()
        clips[f"{domain}/input"] = mu_law_decode(targets[0]).cpu()
        clips[f"{domain}/teacher_forced"] = mu_law_decode(sampled[0]).cpu()
    run.model.train()
    return clips

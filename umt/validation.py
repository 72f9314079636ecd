"""Validation: the teacher-forced loss terms (umt.losses) of each domain on crops of a split,
with the conditioning gain; training validates with it, and `umt evaluate` scores a trained
model's reconstruction with it."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from umt import losses
from umt.model import UMT
from umt.modules.classifier import DomainClassifier
from umt.recipes import recipe
from umt.runtime import CPU, autocast

VAL_BATCH = 8  # validation crops per forward pass


@torch.no_grad()
def validate(
    model: UMT, classifier: DomainClassifier | None, val_sets: dict[str, Dataset], items: int, batch_size: int,
    dtype=None, device: torch.device = CPU, quantized: bool = True,
) -> dict[str, float]:  # fmt: skip
    """Teacher-forced loss terms per domain on `items` crops of each dataset (umt.losses: "ce/D"
    in nats per sample and "bits/D"; "spectrum/D" for frame networks), the conditioning gain
    of each ("gain/ce/D": the loss with another clip's conditioning minus the loss with the
    clip's own; near 0 means the decoder has stopped listening), the classifier's accuracy, and
    for frame networks of several domains "translation_chroma/D": D's crops translated by every
    other domain's frame network, their mean chroma distance to the crop (not in the score).
    `quantized`: the decoders read the latent through the tokenizer (UMT.forward)."""
    was_training = model.training
    model.eval()
    totals: dict[str, list[float]] = {}  # key -> [sum of batch means x batch size, crops]

    def add(key: str, value: float, crops: int) -> None:
        total = totals.setdefault(key, [0.0, 0])
        total[0] += value * crops
        total[1] += crops

    correct = total = 0
    conditioning = recipe(model.cfg).conditioning
    for domain, dataset in val_sets.items():
        others = [d for d in model.cfg.domains if d != domain]  # translation targets of this domain's crops
        for first in range(0, items, batch_size):
            batch = _collate([dataset[i] for i in range(first, min(first + batch_size, items))], device)
            crops = next(iter(batch.values())).shape[1]
            with autocast(dtype, device):
                out = model(batch, [domain], quantized=quantized)
                terms = _per_domain(losses.terms(out))
                if crops > 1:
                    rolled = model(_roll(batch, conditioning), [domain], quantized=quantized)
                    shuffled = _per_domain(losses.terms(rolled))
            for key, value in terms.items():
                add(key, value.item(), crops)
                if crops > 1:
                    add(f"gain/{key}", shuffled[key].item() - value.item(), crops)
            if "levels" in batch and others:
                frames = batch["levels"].shape[2]
                with autocast(dtype, device):
                    translations = [
                        (t, model.decoders[t].spectrum(out.latent, frames), batch["levels"][0]) for t in others
                    ]
                    distance = losses.translation_chroma(translations)
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


def _per_domain(terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The terms a domain's decoder has ("ce/piano"), without the model's own (a tokenizer's commitment)."""
    return {name: value for name, value in terms.items() if "/" in name}


def _collate(items: list[dict[str, torch.Tensor]], device: torch.device) -> dict[str, torch.Tensor]:
    """Dataset items of one domain -> a batch dict of [1, B, ...] tensors (UMT.forward's layout)."""
    return {k: torch.stack([item[k] for item in items])[None].to(device) for k in items[0]}


def _roll(batch: dict[str, torch.Tensor], conditioning: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The same targets, each conditioned on the next clip's conditioning (and excitation)."""
    rolled = {k: torch.roll(v, 1, dims=1) if k in conditioning else v for k, v in batch.items()}
    if "amplitude" in batch:
        rolled["given_amplitude"], rolled["given_phase"] = (
            torch.roll(batch[k], 1, dims=1) for k in ("amplitude", "phase")
        )
    return rolled

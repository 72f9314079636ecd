"""One adversarial training step (see umt.training)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from umt.quantization.mmd import independence_mmd
from umt.runtime import autocast
from umt.training.config import Run, TrainConfig


def train_step(
    run: Run, model, classifier, batch: dict[str, torch.Tensor], tcfg: TrainConfig, dtype, device
) -> dict[str, float]:
    """One optimisation step on a batch of every trainable domain ([D, B, ...] tensors, see
    UMT.forward). `model` and `classifier` are run.model and run.classifier, or their DDP wrappers."""
    with autocast(dtype, device):
        out = model(batch, run.trainable, translate=tcfg.chroma_weight > 0)
    stats = {k: v.item() for k, v in out.losses.items()}
    loss = sum(out.losses.values()) + sum(out.penalties.values())
    if out.translation_chroma is not None:
        stats["translation_chroma"] = out.translation_chroma.item()
        loss = loss + tcfg.chroma_weight * out.translation_chroma

    if classifier is not None and out.latent is not None:
        n_domains = len(run.trainable)
        labels = torch.arange(n_domains, device=device).repeat_interleave(out.latent.shape[0] // n_domains)
        # (2) the classifier learns on latents it cannot change
        with autocast(dtype, device):
            logits = classifier(out.latent.detach()).float()
        classifier_loss = F.cross_entropy(logits, labels)
        run.classifier_optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(classifier_loss).backward()
        run.scaler.step(run.classifier_optimizer)
        stats["classifier_loss"] = classifier_loss.item()
        stats["classifier_acc"] = (logits.argmax(-1) == labels).float().mean().item()
        # (3) the encoder is pushed away from what the classifier now knows
        if tcfg.confusion_weight:
            frozen = {k: v.detach() for k, v in run.classifier.named_parameters()}
            with autocast(dtype, device):
                adversary = torch.func.functional_call(run.classifier, frozen, (out.latent,)).float()
            if tcfg.confusion == "uniform":
                loss = loss - tcfg.confusion_weight * adversary.log_softmax(-1).mean()
            else:
                loss = loss - tcfg.confusion_weight * F.cross_entropy(adversary, labels)

    if out.tokens is not None:  # the dependence between codebooks: always measured, a loss if weighted
        k = out.tokens.streams.shape[0]
        delays = list(range(k)) if tcfg.mmd_delayed and out.tokens.streams.shape[2] > k else None
        with torch.set_grad_enabled(tcfg.mmd_weight > 0):
            mmd = independence_mmd(out.tokens.streams, delays)
        stats["mmd"] = mmd.item()
        if tcfg.mmd_weight:
            loss = loss + tcfg.mmd_weight * mmd
    stats.update({k: v.item() for k, v in out.penalties.items()})

    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.optimizer)
    stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(
        [p for p in run.model.parameters() if p.requires_grad], tcfg.clip
    ).item()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.step += 1
    stats["loss"] = loss.item()
    return stats

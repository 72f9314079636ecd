"""One adversarial training step (see umt.training)."""

from __future__ import annotations

import torch

from umt import losses
from umt.runtime import autocast
from umt.training.config import Run, TrainConfig


def train_step(
    run: Run, model, classifier, batch: dict[str, torch.Tensor], tcfg: TrainConfig, dtype, device
) -> dict[str, float]:
    """One optimisation step on a batch of every trainable domain ([D, B, ...] tensors, see
    UMT.forward). `model` and `classifier` are run.model and run.classifier, or their DDP
    wrappers. Returns every loss term by name (umt.losses), weighted or not, and the step's figures."""
    weights = tcfg.loss_weights
    with autocast(dtype, device):
        out = model(batch, run.trainable, translate=weights["translation_chroma"] > 0)
        terms = losses.terms(out)

    if classifier is not None and out.latent is not None:
        n_domains = len(run.trainable)
        labels = torch.arange(n_domains, device=device).repeat_interleave(out.latent.shape[0] // n_domains)
        # (2) the classifier learns on latents it cannot change
        with autocast(dtype, device):
            logits = classifier(out.latent.detach()).float()
        classifier_loss = losses.classifier_ce(logits, labels)
        run.classifier_optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(classifier_loss).backward()
        run.scaler.step(run.classifier_optimizer)
        # (3) the encoder is pushed away from what the classifier now knows
        if weights["confusion"]:
            frozen = {k: v.detach() for k, v in run.classifier.named_parameters()}
            with autocast(dtype, device):
                adversary = torch.func.functional_call(run.classifier, frozen, (out.latent,)).float()
            terms["confusion"] = losses.confusion(adversary, labels, tcfg.confusion)

    if out.tokens is not None:  # the dependence between codebooks: always measured, a loss if weighted
        with torch.set_grad_enabled(weights["mmd"] > 0):
            terms["mmd"] = losses.mmd(out.tokens.streams, tcfg.mmd_delayed)

    loss = losses.weighted_sum(terms, weights)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.optimizer)
    stats = {name: value.item() for name, value in terms.items()}
    if classifier is not None and out.latent is not None:
        stats["classifier_loss"] = classifier_loss.item()
        stats["classifier_acc"] = (logits.argmax(-1) == labels).float().mean().item()
    stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(
        [p for p in run.model.parameters() if p.requires_grad], tcfg.clip
    ).item()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    stats["loss"] = loss.item()
    return stats

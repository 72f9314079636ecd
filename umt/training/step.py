"""One adversarial training step (see umt.training)."""

from __future__ import annotations

import torch
import torch.distributed as dist

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
    translate = weights["translation_chroma"] > 0 or weights["realism"] > 0
    with autocast(dtype, device):
        out = model(batch, run.trainable, translate=translate, quantized=not tcfg.frames_only)
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
            with autocast(dtype, device):
                adversary = torch.func.functional_call(run.classifier, _frozen(run.classifier), (out.latent,)).float()
            terms["confusion"] = losses.confusion(adversary, labels, tcfg.confusion)

    judged = [(t, predicted) for t, predicted, _ in out.translations if run.critics is not None and t in run.critics]
    if judged:
        real = dict(zip(run.trainable, batch["levels"]))
        # (4) each target's critic learns real spectra of its domain from translations into it
        with autocast(dtype, device):
            critic_loss = sum(
                losses.critic(run.critics[t](real[t]), run.critics[t](predicted.detach())) for t, predicted in judged
            ) / len(judged)
        run.critic_optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(critic_loss).backward()
        _average_over_processes(run.critics)
        run.scaler.step(run.critic_optimizer)
        # (5) the translation path is pushed towards what the critics now take for real
        with autocast(dtype, device):
            terms["realism"] = sum(
                losses.realism(torch.func.functional_call(run.critics[t], _frozen(run.critics[t]), (predicted,)))
                for t, predicted in judged
            ) / len(judged)

    independence = None
    if out.tokens is not None:  # the dependence between codebooks: always measured, a loss if weighted
        run.mmd_pool.append(out.tokens.source)
        if len(run.mmd_pool) >= tcfg.mmd_macro_batches:  # on the macro-batch, through the tokenizer as it is now
            with torch.set_grad_enabled(weights["mmd"] > 0):
                streams = run.model.tokenizer.streams(torch.cat(run.mmd_pool))
                independence = losses.mmd(streams, tcfg.mmd_delayed, tcfg.mmd_positions)
            run.mmd_pool.clear()

    loss = losses.weighted_sum(terms, weights)
    trained = [p for p in run.model.parameters() if p.requires_grad]
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.optimizer)
    stats = {name: value.item() for name, value in terms.items()}
    if classifier is not None and out.latent is not None:
        stats["classifier_loss"] = classifier_loss.item()
        stats["classifier_acc"] = (logits.argmax(-1) == labels).float().mean().item()
    if judged:
        stats["critic_loss"] = critic_loss.item()
    stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(trained, tcfg.clip).item()
    if independence is not None:
        # The independence term joins after the clip, as in its source (whose solver clips nothing):
        # clipped with the rest, any weight came down to the clip's norm, once in a macro-batch.
        stats["mmd"] = independence.item()
        loss = loss + weights["mmd"] * independence.detach()
        if weights["mmd"] > 0:
            _add_gradient(trained, weights["mmd"] * independence)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    stats["loss"] = loss.item()
    return stats


def _add_gradient(params: list[torch.Tensor], term: torch.Tensor) -> None:
    """Adds a term's gradient to params' (unscaled: the term is fp32, outside autocast),
    averaged over processes under torchrun (it bypasses DDP's hooks)."""
    grads = list(torch.autograd.grad(term, params, allow_unused=True))
    if _distributed():  # every process takes part in every reduction, even with no gradient of its own
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        _mean_over_processes(grads)
    for param, grad in zip(params, grads):
        if grad is not None:
            param.grad = grad if param.grad is None else param.grad + grad


def _frozen(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's parameters, detached: a term through them trains what feeds it, not the module."""
    return {name: value.detach() for name, value in module.named_parameters()}


def _average_over_processes(module: torch.nn.Module) -> None:
    """Under torchrun, every process's gradients of a module not wrapped in DDP, averaged (the
    critics: each process may translate into other domains, so DDP's hooks would not all fire)."""
    if _distributed():
        for param in module.parameters():
            if param.grad is None:  # a critic this process did not use, but another may have
                param.grad = torch.zeros_like(param)
        _mean_over_processes([param.grad for param in module.parameters()])


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _mean_over_processes(tensors: list[torch.Tensor]) -> None:
    """Each tensor replaced by its mean over the processes, in place."""
    for tensor in tensors:
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()

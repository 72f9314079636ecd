"""Every loss term of training, each a named function, and their weighted sum.

A term is named by its kind ("confusion"), or kind/domain for the terms each domain has
("ce/piano"). One map of weights by kind (TrainConfig.loss_weights over WEIGHTS) says how much
each counts; the step adds weights[kind] * term over the terms of non-zero weight and logs
every term by its name, weighted or not.

The kinds:
  ce          nats per sample of a WaveNet's output on its domain's audio (teacher forcing)
  spectrum    L1 of a frame network's predicted semitone spectrum levels (spectral recipe)
  flutter     Laplace negative log-likelihood of the spectrum's flutter under the predicted scale
  commitment  a tokenizer's distance from its input to its quantisation
  translation_chroma  1 - chroma cosine between a crop and its translation into another domain
  confusion   the encoder's term against the domain classifier (negative: it rewards confusion)
  realism     how far the target domain's critic finds translated spectra from real ones
              (umt.modules.critic; least squares)
  mmd         the dependence between a tokenizer's codebooks (Lemercier et al., 2024), on a
              macro-batch of many steps' latents: a term only every TrainConfig.mmd_macro_batches steps
The domain classifier's own loss (classifier_ce) and the critics' (critic) have their own
optimisers and no weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from umt import spectral
from umt.errors import UserError
from umt.outputs import SampleOutput
from umt.quantization.mmd import independence_mmd

if TYPE_CHECKING:
    from umt.model import Predictions

WEIGHTS: dict[str, float] = {
    "ce": 1.0,
    "spectrum": 1.0,
    "flutter": 1.0,
    "commitment": 1.0,
    "translation_chroma": 0.0,  # off: reconstruction alone never trains the translation path
    "confusion": 0.01,  # the paper's lambda
    "mmd": 0.0,  # measured and logged whenever there is a tokenizer; a loss when weighted
    "realism": 0.0,  # off: a critic per domain trains only when it counts
}

CONFUSIONS = ("maximize", "uniform")


def kind(name: str) -> str:
    """The kind of a term's name: "ce/piano" -> "ce"."""
    return name.split("/")[0]


def ce(output: SampleOutput, params: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (nats per sample) of targets under a WaveNet's output."""
    return output.nll(params, targets)


def spectrum_l1(predicted: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of predicted spectrum levels [B, F, bins] against the real ones."""
    return (predicted.float() - levels).abs().mean()


def flutter_nll(levels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Laplace negative log-likelihood (without log 2) of the flutter of real levels [B, F, bins]
    under a predicted scale per bin and frame (umt.spectral.flutter)."""
    return (spectral.flutter(levels).abs() / scale + scale.log()).mean()


def translation_chroma(translations: list[tuple[str, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Mean chroma distance (umt.spectral.chroma_distance) over (target domain, a translation's
    predicted levels, its source's real levels): how far translations stray from the notes."""
    return sum(spectral.chroma_distance(predicted, levels) for _, predicted, levels in translations) / len(translations)


def critic(real: torch.Tensor, translated: torch.Tensor) -> torch.Tensor:
    """A critic's least-squares loss on its scores of real and of (detached) translated spectra."""
    return (real.float() - 1).pow(2).mean() + translated.float().pow(2).mean()


def realism(scores: torch.Tensor) -> torch.Tensor:
    """The translation path's least-squares term: a fixed critic's scores of translations, against real (1)."""
    return (scores.float() - 1).pow(2).mean()


def classifier_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The domain classifier's cross-entropy on latents it cannot change."""
    return F.cross_entropy(logits, labels)


def confusion(logits: torch.Tensor, labels: torch.Tensor, how: str) -> torch.Tensor:
    """The encoder's term against a fixed classifier's logits of its latents.

    maximize: the paper's -CE of the classifier (unbounded below: an encoder can drive it to
        -infinity, and a spectral run did);
    uniform: the CE of the classifier's belief against the uniform distribution (bounded
        below by log(domains))."""
    if how == "uniform":
        return -logits.log_softmax(-1).mean()
    return -F.cross_entropy(logits, labels)


def mmd(streams: torch.Tensor, delayed: bool, positions: int) -> torch.Tensor:
    """The dependence between codebooks, residual streams [K, B, T, D] (umt.quantization.mmd)
    on up to `positions` positions, compared at the parallel token LM's delays (codebook k, k
    frames earlier) when `delayed` and the crops are long enough."""
    k = streams.shape[0]
    delays = list(range(k)) if delayed and streams.shape[2] > k else None
    return independence_mmd(streams, delays, positions)


def terms(out: Predictions) -> dict[str, torch.Tensor]:
    """The reconstruction terms of what UMT.forward predicted: per domain its frame network's
    spectrum (and flutter) and its WaveNet's ce; the tokenizer's commitment; the translations'
    chroma distance when it translated."""
    found = {}
    for name, (predicted, scale, levels) in out.spectra.items():
        found[f"spectrum/{name}"] = spectrum_l1(predicted, levels)
        if scale is not None:
            found[f"flutter/{name}"] = flutter_nll(levels, scale)
    for name, (output, params, targets) in out.renders.items():
        found[f"ce/{name}"] = ce(output, params, targets)
    if out.tokens is not None:
        found["commitment"] = out.tokens.penalty
    if out.translations:
        found["translation_chroma"] = translation_chroma(out.translations)
    return found


def parse_weights(items: list[str]) -> dict[str, float]:
    """['confusion=0.02'] -> {'confusion': 0.02} (the --loss-weight flag)."""
    weights = {}
    for item in items:
        name, sep, text = item.partition("=")
        try:
            weights[name] = float(text)
        except ValueError:
            sep = ""
        if not sep or name not in WEIGHTS:
            raise UserError(f"--loss-weight {item}: expected KIND=W, KIND one of {', '.join(WEIGHTS)}")
    return weights


def weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """sum of weights[kind] * term over the terms whose kind has a non-zero weight, in order."""
    total = 0
    for name, value in terms.items():
        weight = weights[kind(name)]
        if weight:
            total = total + weight * value  # weight 1 multiplies exactly: the sum is the old unweighted one
    return total

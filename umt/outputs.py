"""What a WaveNet predicts for each sample, and how it reads the sample before.

Two kinds, chosen by ModelConfig.wavenet.output:
  - "mulaw": a softmax over the 2**mulaw_bits codes of mu-law companded audio; the previous
    sample enters through an embedding table. The paper's output (8 bits). Its codes are the
    audio quantised: 8-bit mu-law alone puts a floor of noise 40-60 dB below the signal, and
    sampling at temperature 1 spreads every step over neighbouring codes.
  - "logistic": a mixture of `mixtures` logistic distributions over the sample value,
    discretised to 16 bits as in PixelCNN++ and Parallel WaveNet; the previous sample enters as
    a value (a linear map of it, as in ClariNet). It trains on the unquantised audio and can be
    as sure of a sample as 16-bit audio is precise.

An output is a plain object (no weights): the decoder owns the embedding and head it asks for.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from umt.audio import mu_law_decode, mu_law_encode
from umt.errors import UserError

SAMPLE_OUTPUTS = ("mulaw", "logistic")
LOGISTIC_BITS = 16  # the discretisation of the logistic mixture's likelihood: 16-bit audio
LOG_SCALE_MIN = math.log(1e-5)  # a third of a 16-bit step: sharper than the grid makes no difference


class MuLaw:
    """Softmax over 2**bits mu-law codes."""

    dtype = torch.long

    def __init__(self, bits: int = 8):
        self.bits = bits
        self.width = 2**bits  # logits per sample
        self.silence = self.width // 2  # the code of 0.0: the input before a crop starts

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Float audio [...] -> the targets [...] (codes)."""
        return mu_law_encode(audio, self.bits)

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        return mu_law_decode(samples, self.bits)

    def embedding(self, channels: int) -> nn.Module:
        return nn.Embedding(self.width, channels)

    def nll(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean nats per sample of targets [B, T] under logits [B, T, width]."""
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


class ValueEmbedding(nn.Module):
    """A sample value [B, T] -> [B, T, C]: value * weight + bias, in float32 whatever the
    autocast (bf16 keeps three significant digits of a sample)."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Linear(1, channels)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        with torch.autocast(values.device.type, enabled=False):
            return self.proj(values.float().unsqueeze(-1))


class LogisticMixture:
    """A mixture of logistics over the sample value in [-1, 1], discretised to 16 bits.

    The head gives per sample, for each of k components, a mixture logit, a mean and a log
    scale: [B, T, 3k] laid out as (logits, means, log scales)."""

    dtype = torch.float32
    silence = 0.0

    def __init__(self, mixtures: int = 10):
        self.mixtures = mixtures
        self.width = 3 * mixtures

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        return audio.float().clamp(-1.0, 1.0)

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        return samples.float()

    def embedding(self, channels: int) -> nn.Module:
        return ValueEmbedding(channels)

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """params [..., 3k] -> mixture logits, means, log scales [..., k] (scales bounded below)."""
        logits, means, log_scales = params.float().chunk(3, dim=-1)
        return logits, means, log_scales.clamp_min(LOG_SCALE_MIN)

    def nll(self, params: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean nats per sample of targets [B, T] (floats in [-1, 1]) under params [B, T, 3k]:
        the probability of each target's 16-bit bin; the first and last bins take the tails."""
        logits, means, log_scales = self.split(params)
        x = targets.float().unsqueeze(-1)
        half_bin = 1.0 / (2**LOGISTIC_BITS - 1)  # 2**16 bins of width 2 / (2**16 - 1) cover [-1, 1]
        inverse_scale = torch.exp(-log_scales)
        upper = inverse_scale * (x - means + half_bin)
        lower = inverse_scale * (x - means - half_bin)
        mid = inverse_scale * (x - means)
        below_upper = upper - F.softplus(upper)  # log sigmoid(upper): the lowest bin takes all below
        above_lower = -F.softplus(lower)  # log (1 - sigmoid(lower)): the highest bin takes all above
        mass = torch.sigmoid(upper) - torch.sigmoid(lower)
        # where the bin's mass underflows float32, the density at its centre times its width
        density = mid - log_scales - 2 * F.softplus(mid) + math.log(2 * half_bin)
        inner = torch.where(mass > 1e-5, torch.log(mass.clamp_min(1e-12)), density)
        log_p = torch.where(x < -1 + half_bin, below_upper, torch.where(x > 1 - half_bin, above_lower, inner))
        return -torch.logsumexp(log_p + logits.log_softmax(-1), dim=-1).mean()


SampleOutput = MuLaw | LogisticMixture


def sample_output(kind: str, mulaw_bits: int = 8, mixtures: int = 10) -> SampleOutput:
    if kind == "mulaw":
        if not 2 <= mulaw_bits <= 16:
            raise UserError(f"mulaw_bits {mulaw_bits}: choose 2 to 16")
        return MuLaw(mulaw_bits)
    if kind == "logistic":
        if mixtures < 1:
            raise UserError(f"mixtures {mixtures}: need at least one")
        return LogisticMixture(mixtures)
    raise UserError(f"sample_output {kind!r}: choose from {', '.join(SAMPLE_OUTPUTS)}")


def shift_right(targets: torch.Tensor, silence: float) -> torch.Tensor:
    """Teacher forcing: the decoder input at t is the target at t-1 (silence before the crop)."""
    return F.pad(targets[:, :-1], (1, 0), value=silence)

"""The tokenizer: a residual vector quantiser on the latent (vector-quantize-pytorch's ResidualVQ).

K codebooks of N vectors each: codebook 0 quantises the latent frame, codebook k the residual
that codebooks 0..k-1 left. A frame becomes K integer tokens; the latent it stands for is the
sum of the K chosen vectors. Codebooks follow their inputs by exponential moving averages
(k-means initialised on the first batch); what trains by gradient is a map before the
quantiser and one after it, both starting as the identity, so that a tokenizer fitted onto a
trained model (encoder frozen) starts from the latent the decoders know, and the
independence loss (umt.quantization.mmd) has something to move: a linear map each side, then
`layers` residual blocks (a two-layer perceptron per frame, its output layer starting at zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class QuantizedResult:
    """What the tokenizer makes of a latent [B, T, C].

    latent: the quantised latent [B, T, C] (straight-through: its gradient reaches the input);
    codes: the tokens [B, T, K];
    penalty: the commitment loss (the input's distance to its quantisation), added by the loop;
    source: the latent it quantised [B, T, C], detached (what a macro-batch of the
        independence loss keeps: umt.training.step).
    """

    latent: torch.Tensor
    codes: torch.Tensor
    penalty: torch.Tensor
    source: torch.Tensor


class _Block(nn.Module):
    """x + a two-layer perceptron of x, per frame; the identity until it trains."""

    def __init__(self, channels: int):
        super().__init__()
        self.hidden = nn.Linear(channels, 2 * channels)
        self.out = nn.Linear(2 * channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(torch.nn.functional.gelu(self.hidden(x)))


class Tokenizer(nn.Module):
    def __init__(self, channels: int, codebooks: int, codebook_size: int, layers: int = 0, commitment: float = 0.25):
        super().__init__()
        from vector_quantize_pytorch import (
            ResidualVQ,  # here: importing it costs 2 s, and most models have no tokenizer
        )

        self.codebooks, self.codebook_size = codebooks, codebook_size
        self.project_in = nn.Linear(channels, channels)
        self.project_out = nn.Linear(channels, channels)
        for layer in (self.project_in, self.project_out):
            nn.init.eye_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.blocks_in = nn.Sequential(*(_Block(channels) for _ in range(layers)))
        self.blocks_out = nn.Sequential(*(_Block(channels) for _ in range(layers)))
        self.rvq = ResidualVQ(
            dim=channels,
            num_quantizers=codebooks,
            codebook_size=codebook_size,
            decay=0.95,  # codebooks follow the batch averages quickly: fitted in hundreds of steps
            kmeans_init=True,
            kmeans_iters=10,
            threshold_ema_dead_code=2,  # a code used by fewer than 2 vectors of a batch is re-seeded
            commitment_weight=commitment,
        )

    def forward(self, latent: torch.Tensor) -> QuantizedResult:
        # Quantisation runs in fp32 (distances to the codebooks; EMA statistics) under any autocast.
        with torch.autocast(latent.device.type, enabled=False):
            quantized, codes, commitment = self.rvq(self.to_quantiser(latent))
            return QuantizedResult(self.from_quantiser(quantized), codes, commitment.sum(), latent.detach())

    def streams(self, latent: torch.Tensor) -> torch.Tensor:
        """For the independence loss (umt.quantization.mmd): the residual each codebook leaves
        [K, B, T, C] (the input less the codewords of codebooks 0..k, differentiable in the
        input) of a latent [B, T, C], the codebooks left as they are (no moving averages, no
        re-seeding)."""
        with torch.autocast(latent.device.type, enabled=False):
            x = self.to_quantiser(latent)
            training = self.rvq.training
            self.rvq.eval()
            with torch.no_grad():
                codewords = self.rvq(x, return_all_codes=True)[3]
            self.rvq.train(training)
            return x.unsqueeze(0) - torch.cumsum(codewords, dim=0)  # codewords are lookups: the gradient reaches x

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Tokens [B, T, K] -> the latent [B, T, C] they stand for."""
        with torch.autocast(codes.device.type, enabled=False):
            return self.from_quantiser(self.rvq.get_output_from_indices(codes))

    def to_quantiser(self, latent: torch.Tensor) -> torch.Tensor:
        """The latent [B, T, C] as the quantiser reads it."""
        return self.blocks_in(self.project_in(latent.float()))

    def from_quantiser(self, quantized: torch.Tensor) -> torch.Tensor:
        """The quantiser's output [B, T, C] as the decoders read it."""
        return self.project_out(self.blocks_out(quantized))

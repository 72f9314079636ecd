"""The shared encoder: audio or its semitone spectrum -> the domain-free latent."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from umt.modules.layers import ResidualStack, taps

if TYPE_CHECKING:
    from umt.config import ModelConfig


class Encoder(nn.Module):
    """Kernel-3 input conv -> non-causal dilated residual stack -> linear map to the latent -> pooling.

    Over the waveform (the paper) the output is averaged over `pool` samples a frame; over the
    log semitone spectrum, over `latent_stride` frames (the last repeated to fill the final one).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ch = cfg.encoder.channels
        spectrum = cfg.encoder.input == "spectrum"
        self.pool = cfg.latent_stride if spectrum else cfg.pool
        self.input = nn.Linear(3 * (cfg.spectrum.bins if spectrum else 1), ch)
        self.stack = ResidualStack(ch, cfg.encoder.blocks, cfg.encoder.layers)
        self.to_latent = nn.Linear(ch, cfg.latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """audio [B, T] (T a multiple of pool) or spectrum levels [B, F, bins] -> latent [B, frames, latent]."""
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        x = self.stack(self.input(taps(x, (1, 0, -1))))
        b, t, _ = x.shape
        if t % self.pool:  # spectrum frames: the last repeated up to a whole latent frame
            x = torch.cat([x, x[:, -1:].expand(b, -t % self.pool, -1)], dim=1)
            t = x.shape[1]
        return self.to_latent(x).view(b, t // self.pool, self.pool, -1).mean(dim=2)

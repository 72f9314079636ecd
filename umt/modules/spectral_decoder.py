"""The spectral recipe's decoder: a frame network (spectrum levels and their flutter) and
a WaveNet renderer."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from umt.modules.layers import ResidualStack, taps
from umt.modules.wavenet import Decoder
from umt.outputs import sample_output

if TYPE_CHECKING:
    from umt.config import ModelConfig


FLUTTER_LOG_SCALE = (math.log(1e-4), 0.0)  # a flutter scale between 0.008 dB and a whole level unit (80 dB)


class SpectralDecoder(nn.Module):
    """One domain's decoder in the spectral recipe.

    frames: latent [B, F, C] -> this domain's semitone spectrum levels [B, F, bins] (a
            non-causal dilated stack at frame rate; trained with L1 against the clean target),
            and with spectrum_flutter the Laplace scale of each level's flutter [B, F, bins];
    renderer: a WaveNet (its output umt.outputs: mu-law codes or a logistic mixture) conditioned
            per frame on spectrum levels and handed, sample by sample, the harmonic excitation
            synthesised from them (umt.spectral).
    The renderer trains on the real spectrum of its domain; at inference it renders the
    frame network's prediction.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ch = cfg.frames.channels
        self.frames_in = nn.Linear(3 * cfg.latent_channels, ch)
        self.frames = ResidualStack(ch, cfg.frames.blocks, cfg.frames.layers)
        self.frames_out = nn.Linear(ch, cfg.spectrum.bins)
        self.flutter_out = nn.Linear(ch, cfg.spectrum.bins) if cfg.frames.flutter else None
        if self.flutter_out is not None:  # start near the benchmark's typical flutter (0.03 levels, 2.4 dB)
            nn.init.constant_(self.flutter_out.bias, math.log(0.03))
        output = sample_output(cfg.wavenet.output, cfg.wavenet.mulaw_bits, cfg.wavenet.mixtures)
        self.renderer = Decoder(
            cfg, condition_channels=cfg.spectrum.bins, excitation_channels=cfg.spectrum.bands, output=output
        )
        self.stride = cfg.latent_stride

    def _hidden(self, latent: torch.Tensor, frames: int | None) -> torch.Tensor:
        if self.stride > 1:
            latent = latent.repeat_interleave(self.stride, dim=1)[:, :frames]
        return F.relu(self.frames(self.frames_in(taps(latent, (1, 0, -1)))))

    def spectrum(self, latent: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """latent [B, F, C] -> predicted spectrum levels [B, F * latent_stride, bins] (the first
        `frames` of them if given)."""
        return self.frames_out(self._hidden(latent, frames))

    def spectrum_and_flutter(
        self, latent: torch.Tensor, frames: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`spectrum`, and beside it the Laplace scale of each level's flutter (levels; None
        without spectrum_flutter)."""
        hidden = self._hidden(latent, frames)
        if self.flutter_out is None:
            return self.frames_out(hidden), None
        # the flutter head reads the trunk but does not shape it: the levels' L1 alone does (a
        # trunk shared with the flutter likelihood traded 25 % of its val L1 for flutter)
        scale = self.flutter_out(hidden.detach()).float().clamp(*FLUTTER_LOG_SCALE).exp()
        return self.frames_out(hidden), scale

"""The realism critics of the translation path: one per domain, real against translated spectra.

A frame network learns its domain's spectra from that domain's own latents; what it makes of
another domain's latent (a translation) only the chroma term constrains, so a translation into
piano from a held flute note holds the note where a piano strikes it and lets it die away. A
critic of the target domain scores each frame real (1) or translated (0) from about a third of
a second around it; the frame network is pushed towards spectra it scores real
(umt.losses.realism). Frame rate, so cheap on a CPU. What a critic reads (FEATURES):
  spectrum  the smoothed semitone spectrum (umt.spectral.smoothed: notes, timbre, attacks and
            decays, not the flutter the frame network predicts apart);
  envelope  only its dynamics, per frame: the loudness and how much the bins rise and fall
            since the frame before; no pitch, so it cannot pull the notes towards the target's
            usual ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from umt import spectral
from umt.modules.layers import ResidualStack

FEATURES = ("spectrum", "envelope")
CHANNELS = 64
LAYERS = 5  # dilations 1..16: 31 frames either side, 0.31 s at 100 frames/s


def dynamics(levels: torch.Tensor) -> torch.Tensor:
    """Levels [B, F, bins] -> [B, F, 3]: the level of the whole frame (its bins' power summed),
    and the summed rises and falls of the bins' levels from the frame before (0 at the first)."""
    loudness = spectral.level(spectral.amplitude(levels).pow(2).sum(-1).sqrt())
    change = F.pad(levels.diff(dim=1), (0, 0, 1, 0))
    return torch.stack([loudness, change.clamp_min(0).sum(-1), (-change).clamp_min(0).sum(-1)], dim=-1)


class FrameCritic(nn.Module):
    """Levels [B, F, bins] -> a realism score per frame [B, F] (least-squares GAN: real 1, translated 0)."""

    def __init__(self, bins: int, features: str = "spectrum", channels: int = CHANNELS, layers: int = LAYERS):
        super().__init__()
        self.features = features
        self.inp = nn.Linear(bins if features == "spectrum" else 3, channels)
        self.stack = ResidualStack(channels, 1, layers)
        self.out = nn.Linear(channels, 1)

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        x = spectral.smoothed(levels)
        if self.features == "envelope":
            x = dynamics(x)
        return self.out(F.relu(self.stack(self.inp(x)))).squeeze(-1)


def critics(domains: list[str], bins: int, features: str) -> nn.ModuleDict:
    """One critic per domain."""
    return nn.ModuleDict({d: FrameCritic(bins, features) for d in domains})

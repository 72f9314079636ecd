"""The domain-confusion classifier: which domain a latent came from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from umt.modules.layers import ResidualStack

if TYPE_CHECKING:
    from umt.config import ModelConfig


class DomainClassifier(nn.Module):
    """Predicts the domain of a latent: per-frame linear layers with ELU (after classifier_context
    dilated layers over time, if any), logits averaged over frames."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        width = cfg.latent_channels
        self.context = None
        if cfg.classifier.context:
            self.context = nn.Sequential(
                nn.Linear(width, cfg.classifier.channels),
                ResidualStack(cfg.classifier.channels, 1, cfg.classifier.context),
            )
            width = cfg.classifier.channels
        layers: list[nn.Module] = []
        for _ in range(cfg.classifier.layers - 1):
            layers += [nn.Linear(width, cfg.classifier.channels), nn.ELU()]
            width = cfg.classifier.channels
        layers.append(nn.Linear(width, len(cfg.domains)))
        self.net = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, frames, C] -> logits [B, domains]."""
        if self.context is not None:
            latent = self.context(latent)
        return self.net(latent).mean(dim=1)

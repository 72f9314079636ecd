"""The WaveNet decoder: causal dilated gated layers conditioned per frame (the paper's
decoder, and the spectral recipe's renderer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from umt.modules.layers import add_per_frame, dilations, taps
from umt.outputs import MuLaw, SampleOutput

if TYPE_CHECKING:
    from umt.config import ModelConfig


class WaveNetLayer(nn.Module):
    """One gated residual layer: a causal kernel-2 dilated conv to 2R channels, plus the layer's
    conditioning (computed per frame by the decoder), a tanh * sigmoid gate, then one fused linear
    map to the residual (R) and skip (S) paths. A module, so its activations can be hooked."""

    def __init__(self, conv: nn.Linear, res_skip: nn.Linear, dilation: int):
        super().__init__()
        self.r, self.dilation = res_skip.in_features, dilation
        self.conv = conv  # 2R -> 2R over taps (t - d, t)
        self.res_skip = res_skip  # R -> R + S

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the new residual stream and the layer's skip output."""
        h = add_per_frame(self.conv(taps(x, (self.dilation, 0))), cond)
        out = self.res_skip(torch.tanh(h[..., : self.r]) * torch.sigmoid(h[..., self.r :]))
        return x + out[..., : self.r], out[..., self.r :]


class Decoder(nn.Module):
    """Conditional WaveNet; predicts sample t from samples < t and the latent, as the
    distribution of its `output` (umt.outputs: mu-law codes, or a mixture of logistics).

    Layers are WaveNetLayers; the conditioning of every layer's gate and of the head is one
    linear map of each latent frame. The head sums the skips:
    ReLU -> linear + conditioning -> ReLU -> linear to the output's parameters.
    """

    def __init__(self, cfg: ModelConfig, condition_channels: int | None = None, excitation_channels: int = 0,
                 output: SampleOutput | None = None):  # fmt: skip
        super().__init__()
        r, s = cfg.wavenet.residual_channels, cfg.wavenet.skip_channels
        self.residual_channels, self.skip_channels = r, s
        self.output = output or MuLaw()
        self.dilations = dilations(cfg.wavenet.blocks, cfg.wavenet.layers)
        self.embed = self.output.embedding(r)
        # A sample-rate input added to the embedding of the previous sample (the excitation at t).
        self.excite = nn.Linear(excitation_channels, r, bias=False) if excitation_channels else None
        # every conv, then every res_skip: the order in which the seeded initialisation has always drawn them
        convs = [nn.Linear(2 * r, 2 * r) for _ in self.dilations]
        res_skips = [nn.Linear(r, r + s) for _ in self.dilations]
        self.layers = nn.ModuleList(WaveNetLayer(c, rs, d) for c, rs, d in zip(convs, res_skips, self.dilations))
        self.condition = nn.Linear(condition_channels or cfg.latent_channels, 2 * r * len(self.dilations) + s)
        self.head_hidden = nn.Linear(s, s)
        self.head_out = nn.Linear(s, self.output.width)
        # Recompute each layer in the backward pass instead of storing its activations:
        # about a third more compute for a fraction of the memory (paper-size decoders).
        self.activation_checkpointing = False

    def forward(
        self, previous: torch.Tensor, latent: torch.Tensor, excitation: torch.Tensor | None = None
    ) -> torch.Tensor:
        """previous [B, T] samples as the output codes them (the target shifted right by one),
        latent [B, T/pool, C] (the conditioning), excitation [B, T, E] for an excited decoder
        -> the output's parameters [B, T, output.width] (mu-law: logits)."""
        x = self.embed(previous)
        if self.excite is not None:
            x = x + self.excite(excitation)
        cond = self.condition(latent)
        r, s = self.residual_channels, self.skip_channels
        skip = torch.zeros((), device=x.device, dtype=x.dtype)
        for i, layer in enumerate(self.layers):
            layer_cond = cond[..., 2 * r * i : 2 * r * (i + 1)]
            if self.activation_checkpointing and torch.is_grad_enabled():
                x, layer_skip = torch.utils.checkpoint.checkpoint(layer, x, layer_cond, use_reentrant=False)
            else:
                x, layer_skip = layer(x, layer_cond)
            skip = skip + layer_skip
        if isinstance(self.output, MuLaw):
            return self.head_out(F.relu(add_per_frame(self.head_hidden(F.relu(skip)), cond[..., -s:])))
        # a sample value's mean and scale need more than bf16's three significant digits
        with torch.autocast(x.device.type, enabled=False):
            h = add_per_frame(self.head_hidden(F.relu(skip.float())), cond[..., -s:].float())
            return self.head_out(F.relu(h))

"""Layers the networks are built of: dilated taps (a convolution as one matrix multiply),
per-frame conditioning, and the non-causal dilated residual stack."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dilations(blocks: int, layers: int) -> list[int]:
    return [2**i for _ in range(blocks) for i in range(layers)]


def taps(x: torch.Tensor, offsets: tuple[int, ...]) -> torch.Tensor:
    """x [B, T, C] -> [B, T, len(offsets) * C]: x[t - o] for each offset o, zero outside the crop.

    A dilated convolution is then one matrix multiply over the concatenated taps: positive
    offsets look into the past, so (d, 0) is a causal kernel-2 conv, (d, 0, -d) a centred
    kernel-3 one. Layers are nn.Linear on channels-last activations because one large
    matrix multiply is what CPUs (and incremental generation) run fastest.
    """
    t = x.shape[1]
    views = []
    for o in offsets:
        if o > 0:
            views.append(F.pad(x, (0, 0, o, 0))[:, :t])
        elif o < 0:
            views.append(F.pad(x, (0, 0, 0, -o))[:, -o:])
        else:
            views.append(x)
    return torch.cat(views, dim=-1)


def add_per_frame(x: torch.Tensor, per_frame: torch.Tensor) -> torch.Tensor:
    """x [B, frames*pool, C] + per_frame [B, frames, C], each frame's vector added to its `pool` samples.

    This is nearest-neighbour upsampling of the conditioning without materialising it.
    """
    b, t, c = x.shape
    frames = per_frame.shape[1]
    return (x.view(b, frames, t // frames, c) + per_frame.unsqueeze(2)).view(b, t, c)


class ResidualLayer(nn.Module):
    """x + W_mix relu(conv3_d(relu(x))): one non-causal dilated layer (a module, so it can be hooked)."""

    def __init__(self, conv: nn.Linear, mix: nn.Linear, dilation: int):
        super().__init__()
        self.dilation = dilation
        self.conv = conv  # 3C -> C over taps (t - d, t, t + d)
        self.mix = mix  # C -> C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.relu(self.conv(taps(F.relu(x), (self.dilation, 0, -self.dilation)))))


class ResidualStack(nn.Module):
    """Non-causal dilated residual stack over [B, T, C]: dilations 1, 2, ..., 2**(layers-1) per block."""

    def __init__(self, channels: int, blocks: int, layers: int):
        super().__init__()
        ds = dilations(blocks, layers)
        # every conv, then every mix: the order in which the seeded initialisation has always drawn them
        convs = [nn.Linear(3 * channels, channels) for _ in ds]
        mixes = [nn.Linear(channels, channels) for _ in ds]
        self.layers = nn.Sequential(*(ResidualLayer(c, m, d) for c, m, d in zip(convs, mixes, ds)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

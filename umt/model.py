"""The universal music translation network: one encoder, one WaveNet decoder per domain,
and a domain-confusion classifier on the latent (Mor et al., 2018).

Shapes: audio and mu-law codes are [batch, time]; activations are channels-last,
[batch, time, channels]; the latent is [batch, frames, latent_channels], frames = time / pool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from umt.audio import MU, mu_law_decode
from umt.errors import UserError

N_CLASSES = MU + 1  # 256-way softmax over mu-law codes
SILENCE = N_CLASSES // 2  # the code of 0.0; the first decoder input of a crop


@dataclass
class ModelConfig:
    sample_rate: int = 16000
    # encoder: non-causal residual stack, kernel 3, dilations 1, 2, ..., 2**(layers-1) per block
    encoder_blocks: int = 3
    encoder_layers: int = 10
    encoder_channels: int = 128
    latent_channels: int = 64
    pool: int = 800  # samples per latent frame (800 at 16 kHz = 20 Hz)
    # decoders: causal WaveNet, kernel 2, same dilation pattern
    decoder_blocks: int = 4
    decoder_layers: int = 14
    residual_channels: int = 128
    skip_channels: int = 128
    # domain-confusion classifier: 1x1 convs with ELU, averaged over time
    classifier_layers: int = 3
    classifier_channels: int = 100
    domains: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def encoder_receptive_field(self) -> int:
        """Samples of input that one encoder output sample sees (centred, before pooling)."""
        return 1 + 2 + self.encoder_blocks * 2 * (2**self.encoder_layers - 1)

    @property
    def decoder_receptive_field(self) -> int:
        """Past samples one decoder prediction depends on (the input is shifted by one)."""
        return self.decoder_blocks * (2**self.decoder_layers - 1) + 1


PRESETS: dict[str, ModelConfig] = {
    # The paper's sizes: encoder 3 x 10 layers, 128 channels, latent 64 pooled by 800;
    # decoders 4 x 14 layers, 128 residual and skip channels.
    "paper": ModelConfig(),
    # Trainable on two CPU cores in hours: receptive field 64 ms, 20 Hz latent as the paper.
    "small": ModelConfig(
        encoder_blocks=2, encoder_layers=8, encoder_channels=64,
        decoder_blocks=2, decoder_layers=9, residual_channels=64, skip_channels=64,
    ),
    # For tests: a few thousand parameters, 100-sample latent frames.
    "tiny": ModelConfig(
        encoder_blocks=1, encoder_layers=4, encoder_channels=16, latent_channels=8, pool=100,
        decoder_blocks=1, decoder_layers=5, residual_channels=16, skip_channels=16,
        classifier_layers=3, classifier_channels=16,
    ),
}  # fmt: skip


def preset(name: str, domains: list[str], **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise UserError(f"--preset {name}: choose from {', '.join(PRESETS)}")
    return ModelConfig.from_dict({**PRESETS[name].to_dict(), **overrides, "domains": list(domains)})


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


class Encoder(nn.Module):
    """Non-causal dilated residual stack -> linear map to the latent -> average pooling.

    Each layer: x + W_mix relu(dilated_conv3(relu(x))).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ch = cfg.encoder_channels
        self.pool = cfg.pool
        self.input = nn.Linear(3, ch)  # kernel-3 conv over the waveform
        self.dilations = dilations(cfg.encoder_blocks, cfg.encoder_layers)
        self.convs = nn.ModuleList(nn.Linear(3 * ch, ch) for _ in self.dilations)
        self.mixes = nn.ModuleList(nn.Linear(ch, ch) for _ in self.dilations)
        self.to_latent = nn.Linear(ch, cfg.latent_channels)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, T] floats in [-1, 1], T a multiple of pool -> latent [B, T / pool, latent]."""
        x = self.input(taps(audio.unsqueeze(-1), (1, 0, -1)))
        for d, conv, mix in zip(self.dilations, self.convs, self.mixes):
            x = x + mix(F.relu(conv(taps(F.relu(x), (d, 0, -d)))))
        b, t, _ = x.shape
        return self.to_latent(x).view(b, t // self.pool, self.pool, -1).mean(dim=2)


class Decoder(nn.Module):
    """Conditional WaveNet over mu-law codes; predicts code t from codes < t and the latent.

    Each layer: a causal kernel-2 dilated conv to 2R channels, plus the layer's conditioning
    (a linear map of the latent, computed per frame), a tanh * sigmoid gate, then one fused
    linear map to the residual (R) and skip (S) paths. The head sums the skips:
    ReLU -> linear + conditioning -> ReLU -> linear to 256 logits.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        r, s = cfg.residual_channels, cfg.skip_channels
        self.residual_channels, self.skip_channels = r, s
        self.dilations = dilations(cfg.decoder_blocks, cfg.decoder_layers)
        self.embed = nn.Embedding(N_CLASSES, r)
        self.convs = nn.ModuleList(nn.Linear(2 * r, 2 * r) for _ in self.dilations)  # taps (t - d, t)
        self.res_skip = nn.ModuleList(nn.Linear(r, r + s) for _ in self.dilations)
        # Conditioning of every layer's gate and of the head, as one linear map of each latent frame.
        self.condition = nn.Linear(cfg.latent_channels, 2 * r * len(self.dilations) + s)
        self.head_hidden = nn.Linear(s, s)
        self.head_out = nn.Linear(s, N_CLASSES)
        # Recompute each layer in the backward pass instead of storing its activations:
        # about a third more compute for a fraction of the memory (paper-size decoders).
        self.activation_checkpointing = False

    def forward(self, previous: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """previous [B, T] codes (the target shifted right by one), latent [B, T/pool, C] -> logits [B, T, 256]."""
        x = self.embed(previous)
        cond = self.condition(latent)
        r, s = self.residual_channels, self.skip_channels
        skip = torch.zeros((), device=x.device, dtype=x.dtype)
        for i in range(len(self.dilations)):
            args = (i, x, cond[..., 2 * r * i : 2 * r * (i + 1)])
            if self.activation_checkpointing and torch.is_grad_enabled():
                x, layer_skip = torch.utils.checkpoint.checkpoint(self.layer, *args, use_reentrant=False)
            else:
                x, layer_skip = self.layer(*args)
            skip = skip + layer_skip
        h = add_per_frame(self.head_hidden(F.relu(skip)), cond[..., -s:])
        return self.head_out(F.relu(h))

    def layer(self, i: int, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual layer i: returns the new residual stream and the layer's skip output."""
        r = self.residual_channels
        h = add_per_frame(self.convs[i](taps(x, (self.dilations[i], 0))), cond)
        out = self.res_skip[i](torch.tanh(h[..., :r]) * torch.sigmoid(h[..., r:]))
        return x + out[..., :r], out[..., r:]


class DomainClassifier(nn.Module):
    """Predicts the domain of a latent: per-frame linear layers with ELU, logits averaged over frames."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = []
        width = cfg.latent_channels
        for _ in range(cfg.classifier_layers - 1):
            layers += [nn.Linear(width, cfg.classifier_channels), nn.ELU()]
            width = cfg.classifier_channels
        layers.append(nn.Linear(width, len(cfg.domains)))
        self.net = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, frames, C] -> logits [B, domains]."""
        return self.net(latent).mean(dim=1)


def shift_right(codes: torch.Tensor) -> torch.Tensor:
    """Teacher forcing: the decoder input at t is the target at t-1 (silence before the crop)."""
    return F.pad(codes[:, :-1], (1, 0), value=SILENCE)


class UMT(nn.Module):
    """Encoder + one decoder per domain. The classifier is kept apart: it has its own optimiser.

    `encode` is the one seam between encoder and decoders: whatever the decoders and the
    classifier see (a later residual quantiser included) comes out of it.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not cfg.domains:
            raise UserError("a model needs at least one domain")
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoders = nn.ModuleDict({d: Decoder(cfg) for d in cfg.domains})

    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Mu-law codes [B, T] -> latent [B, T / pool, C]."""
        return self.encoder(mu_law_decode(codes))

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor, domains: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct a batch of each of `domains` through its own decoder.

        inputs, targets: [D, B, T] codes, row d from domains[d] (inputs augmented, targets clean).
        Returns (cross-entropy per domain [D] in nats per sample, latents [D*B, frames, C]).
        """
        n_domains, batch, t = targets.shape
        latent = self.encode(inputs.reshape(n_domains * batch, t))
        losses = []
        for d, name in enumerate(domains):
            logits = self.decoders[name](shift_right(targets[d]), latent[d * batch : (d + 1) * batch])
            losses.append(F.cross_entropy(logits.float().flatten(0, 1), targets[d].flatten()))
        return torch.stack(losses), latent


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(cfg: ModelConfig) -> str:
    """One line per part: parameters and receptive field, for logs and the README."""
    model = UMT(cfg)
    enc, dec = parameter_count(model.encoder), parameter_count(next(iter(model.decoders.values())))
    cls = parameter_count(DomainClassifier(cfg))
    ms = 1000 / cfg.sample_rate
    return (
        f"encoder {enc / 1e6:.2f} M params, receptive field {cfg.encoder_receptive_field} samples "
        f"({cfg.encoder_receptive_field * ms:.0f} ms), latent {cfg.latent_channels} x {cfg.sample_rate / cfg.pool:g} Hz\n"
        f"decoder {dec / 1e6:.2f} M params each x {len(cfg.domains)}, receptive field "
        f"{cfg.decoder_receptive_field} samples ({cfg.decoder_receptive_field * ms:.0f} ms)\n"
        f"classifier {cls / 1e3:.1f} k params"
    )


def check_crop(cfg: ModelConfig, crop: int) -> None:
    if crop % cfg.pool or crop <= 0:
        raise UserError(f"--crop {crop}: must be a positive multiple of the latent frame ({cfg.pool} samples)")

"""The universal music translation network: one encoder, one WaveNet decoder per domain,
and a domain-confusion classifier on the latent (Mor et al., 2018).

Shapes: audio and mu-law codes are [batch, time]; activations are channels-last,
[batch, time, channels]; the latent is [batch, frames, latent_channels], frames = time / pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from umt import spectral
from umt.audio import mu_law_decode
from umt.config import ModelConfig
from umt.errors import UserError
from umt.modules.classifier import DomainClassifier
from umt.modules.encoder import Encoder
from umt.modules.spectral_decoder import SpectralDecoder
from umt.modules.wavenet import Decoder
from umt.outputs import MuLaw, SampleOutput
from umt.outputs import shift_right as shift_targets
from umt.quantization.tokenizer import QuantizedResult, Tokenizer

SILENCE = MuLaw().silence  # the 8-bit code of 0.0; the first decoder input of a crop


def shift_right(codes: torch.Tensor) -> torch.Tensor:
    """Teacher forcing of an 8-bit mu-law decoder: the input at t is the code at t-1."""
    return shift_targets(codes, SILENCE)


@dataclass
class Predictions:
    """What UMT.forward predicts of a batch; umt.losses.terms makes the loss terms of it.

    latent: [D * B, frames, C] what the decoders read, for the domain-confusion classifier;
    tokens: the tokenizer's result, if the model has one (commitment, the latent it quantised);
    renders: per domain, a WaveNet's teacher-forced output: (its SampleOutput, the output's
            parameters, the targets as that output codes them);
    spectra: per domain, a frame network's (predicted levels, flutter scale or None, real levels);
    translations: when asked for, (another domain, the levels its frame network predicts of a
            domain's crops, the crops' real levels), one per domain.
    """

    latent: torch.Tensor | None = None
    tokens: QuantizedResult | None = None
    renders: dict[str, tuple[SampleOutput, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    spectra: dict[str, tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = field(default_factory=dict)
    translations: list[tuple[str, torch.Tensor, torch.Tensor]] = field(default_factory=list)


class UMT(nn.Module):
    """Encoder + one decoder per domain. The classifier is kept apart: it has its own optimiser.

    `latent` is the one seam between encoder and decoders: whatever the decoders and the
    classifier see (a later residual quantiser included) comes out of it, in training (from
    augmented encoder inputs) and in translation (`encode`, from audio).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not cfg.domains:
            raise UserError("a model needs at least one domain")
        cfg.check()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoders = nn.ModuleDict({d: SpectralDecoder(cfg) if cfg.spectral else Decoder(cfg) for d in cfg.domains})
        if cfg.uses_spectrum:
            self.spectrum = spectral.SemitoneSpectrum(
                cfg.sample_rate, cfg.pool, cfg.spectrum.midi_low, cfg.spectrum.bins
            )
            self.register_buffer(
                "freqs", spectral.bin_frequencies(cfg.spectrum.midi_low, cfg.spectrum.bins), persistent=False
            )
        tok = cfg.tokenizer
        self.tokenizer = (
            Tokenizer(cfg.latent_channels, tok.codebooks, tok.codebook_size, tok.layers) if tok.codebooks else None
        )

    def encoder_input(self, audio: torch.Tensor) -> torch.Tensor:
        """What the encoder reads from audio [B, T]: the waveform, or its spectrum levels [B, T/pool + 1, bins]."""
        if self.cfg.encoder.input == "spectrum":
            return spectral.level(self.spectrum(audio)[0])
        return audio

    def latent(self, encoder_input: torch.Tensor) -> torch.Tensor:
        """Encoder input (see encoder_input) -> latent [B, frames, C]."""
        return self.encoder(encoder_input)

    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Mu-law codes [B, T] -> latent [B, frames, C] (T / pool frames; T / pool + 1 over the spectrum)."""
        return self.latent(self.encoder_input(mu_law_decode(codes)))

    def quantize(self, latent: torch.Tensor, enabled: bool = True) -> tuple[torch.Tensor, QuantizedResult | None]:
        """What the decoders read of a latent [B, F, C]: through the tokenizer if there is one
        (and `enabled`)."""
        if self.tokenizer is None or not enabled:
            return latent, None
        tokens = self.tokenizer(latent)
        return tokens.latent, tokens

    def excitation(self, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Excitation [B, (F - 1) * pool, bands] of amplitude and phase [B, F, bins]."""
        return spectral.excitation(amplitude, phase, self.freqs, self.cfg.pool, self.cfg.sample_rate)

    def render_targets(self, audio: torch.Tensor, excitation: torch.Tensor, domain: str) -> torch.Tensor:
        """What `domain`'s renderer models of float audio [B, T], as its output codes it (umt.outputs):
        the audio, or with render_residual the audio minus the excitation [B, T, E]; quantised
        once, here (mu-law: codes; a logistic mixture: the float values)."""
        if self.cfg.wavenet.residual:
            audio = audio.float() - excitation.float().sum(-1)
        return self.decoders[domain].renderer.output.encode(audio)

    def waveform(self, generated: torch.Tensor, excitation: torch.Tensor | None) -> torch.Tensor:
        """Audio [..., T] of what a WaveNet generated, decoded to floats [..., T] (the inverse of
        render_targets): itself, or with render_residual itself plus the excitation, summed
        over its bands [..., T]."""
        audio = generated
        if self.cfg.wavenet.residual:
            audio = (audio + excitation.to(audio.device)).clamp(-1.0, 1.0)
        return audio

    def forward(
        self, batch: dict[str, torch.Tensor], domains: list[str], translate: bool = False, quantized: bool = True
    ) -> Predictions:
        """Reconstruct a batch of each of `domains` through its own decoder (teacher forcing).

        Every tensor of `batch` is [D, B, ...], row d from domains[d]:
          wavenet decoders: inputs, targets [D, B, T] codes (inputs augmented, targets clean);
          spectral decoders: levels_in, levels [D, B, F, bins] (augmented input, clean target;
            absent when the frame networks do not train), and for the renderers (absent when
            they do not train) audio [D, B, T] (float crops), render_levels [D, B, T / pool, bins],
            amplitude and phase [D, B, T / pool + 1, bins] of the clean target, and optionally
            given_amplitude and given_phase: another excitation to condition on (validation).
        translate (spectral, several domains): also translate each domain's crops into another
        domain, the same random one for all (a shift of the domain list).
        quantized: the decoders read the latent through the tokenizer, if there is one (False:
        the latent itself, as translation reads it without --tokens).
        """
        if not self.cfg.spectral:
            n_domains, batch_size, t = batch["targets"].shape
            latent, tokens = self.quantize(self.encode(batch["inputs"].reshape(n_domains * batch_size, t)), quantized)
            out = Predictions(latent, tokens)
            per_domain = latent.unflatten(0, (n_domains, batch_size))
            for d, name in enumerate(domains):
                decoder = self.decoders[name]
                logits = decoder(shift_right(batch["targets"][d]), per_domain[d])
                out.renders[name] = (decoder.output, logits, batch["targets"][d])
            return out
        out = Predictions()
        if "levels" in batch:
            n_domains, batch_size, frames = batch["levels"].shape[:3]
            out.latent, out.tokens = self.quantize(self.latent(batch["levels_in"].flatten(0, 1)), quantized)
            per_domain = out.latent.unflatten(0, (n_domains, batch_size))
            for d, name in enumerate(domains):
                predicted, scale = self.decoders[name].spectrum_and_flutter(per_domain[d], frames)
                out.spectra[name] = (predicted, scale, batch["levels"][d])
            if translate and n_domains > 1:
                shift = int(torch.randint(1, n_domains, ()))
                for d in range(n_domains):
                    target = domains[(d + shift) % n_domains]
                    predicted = self.decoders[target].spectrum(per_domain[d], frames)
                    out.translations.append((target, predicted, batch["levels"][d]))
        if "audio" in batch:
            for d, name in enumerate(domains):
                # the peaks, as at inference (all bins with their own phases would sum to twice the level)
                excitation = self.excitation(spectral.peaks(batch["amplitude"][d]), batch["phase"][d])
                targets = self.render_targets(batch["audio"][d], excitation, name)
                if "given_amplitude" in batch:  # conditioned on another excitation than the target's own
                    excitation = self.excitation(spectral.peaks(batch["given_amplitude"][d]), batch["given_phase"][d])
                renderer = self.decoders[name].renderer
                params = renderer(
                    shift_targets(targets, renderer.output.silence), batch["render_levels"][d], excitation
                )
                out.renders[name] = (renderer.output, params, targets)
        return out


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(cfg: ModelConfig) -> str:
    """One line per part: parameters and receptive field, for logs and the README."""
    model = UMT(cfg)
    enc, dec = parameter_count(model.encoder), parameter_count(next(iter(model.decoders.values())))
    cls = parameter_count(DomainClassifier(cfg))
    ms = 1000 / cfg.sample_rate
    unit = cfg.pool if cfg.encoder.input == "spectrum" else 1  # samples per encoder input step
    lines = [
        (
            f"encoder {enc / 1e6:.2f} M params over the {cfg.encoder.input}, receptive field "
            f"{cfg.encoder.receptive_field * unit * ms:.0f} ms, latent {cfg.latent_channels} x "
            f"{cfg.sample_rate / cfg.latent_hop:g} Hz"
        ),
        (
            f"decoder ({cfg.decoder_type}) {dec / 1e6:.2f} M params each x {len(cfg.domains)}, WaveNet receptive field "
            f"{cfg.wavenet.receptive_field} samples ({cfg.wavenet.receptive_field * ms:.0f} ms)"
        ),
        f"classifier {cls / 1e3:.1f} k params",
    ]
    tok = cfg.tokenizer
    if tok.codebooks:
        blocks = f", {tok.layers} blocks each side" if tok.layers else ""
        lines.insert(1, f"tokenizer: residual VQ, {tok.codebooks} codebooks of {tok.codebook_size} "
                        f"({tok.codebooks * math.log2(tok.codebook_size):.0f} bits a frame){blocks}")  # fmt: skip
    if cfg.spectral:
        lines.insert(2, f"frame networks: {cfg.spectrum.bins} semitone bins from MIDI {cfg.spectrum.midi_low}, "
                        f"receptive field {cfg.frames.receptive_field * cfg.pool * ms:.0f} ms")  # fmt: skip
    return "\n".join(lines)

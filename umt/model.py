"""The universal music translation network: one encoder, one WaveNet decoder per domain,
and a domain-confusion classifier on the latent (Mor et al., 2018).

Shapes: audio and mu-law codes are [batch, time]; activations are channels-last,
[batch, time, channels]; the latent is [batch, frames, latent_channels], frames = time / pool.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn

from umt import spectral
from umt.audio import mu_law_decode
from umt.errors import UserError
from umt.modules.classifier import DomainClassifier
from umt.modules.encoder import Encoder
from umt.modules.spectral_decoder import SpectralDecoder
from umt.modules.wavenet import Decoder
from umt.outputs import MuLaw, SampleOutput, sample_output
from umt.outputs import shift_right as shift_targets
from umt.quantization.tokenizer import QuantizedResult, Tokenizer

SILENCE = MuLaw().silence  # the 8-bit code of 0.0; the first decoder input of a crop


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
    # 0: the paper's classifier, which reads each latent frame alone. n > 0: it first reads the
    # latent through n non-causal dilated layers (dilations 1..2**(n-1), kernel 3), so it can
    # see domain traits that only show over time (how notes start and decay), as the decoders can.
    classifier_context: int = 0
    # The spectral recipe (see umt.spectral): "spectrum" encodes the log semitone spectrum at
    # frame rate instead of the waveform; a "spectral" decoder is a frame network that predicts
    # its domain's semitone spectrum from the latent, then a WaveNet (the sizes above) that
    # renders it, handed a harmonic excitation built from that spectrum. pool is then the hop.
    encoder_input: str = "waveform"  # waveform | spectrum
    decoder_type: str = "wavenet"  # wavenet | spectral
    spectrum_midi_low: int = 24  # lowest semitone bin (C1, 32.7 Hz)
    spectrum_bins: int = 96  # eight octaves
    # Over the spectrum: spectrum frames averaged into one latent frame (1: the latent at the
    # frame rate, 100 Hz at pool 160; 5: 20 Hz, the paper's rate); the frame networks repeat
    # each latent frame that many times and predict the spectrum at the frame rate.
    latent_stride: int = 1
    frame_blocks: int = 2
    frame_layers: int = 6
    frame_channels: int = 128
    # The frame networks also predict the flutter of each bin's level: its frame-to-frame
    # movement about a 5-frame moving average, which an L1 prediction averages away (a Laplace
    # scale per bin and frame, by maximum likelihood). Translation samples that flutter back
    # (Translator's `flutter`): without it the benchmark judge hears no organ in the organ
    # translations (0 of 24), with the real audio's own flutter on the prediction, all of them.
    spectrum_flutter: bool = False
    # The renderer's WaveNet models the audio minus the excitation (its output is the excitation
    # plus what it samples) instead of the audio itself.
    render_residual: bool = False
    # What each renderer's WaveNet predicts per sample (umt.outputs): "mulaw", a softmax over
    # 2**mulaw_bits codes (the paper, 8 bits), or "logistic", a mixture of `mixtures` logistics
    # over the 16-bit sample value. The paper's decoders (decoder_type "wavenet") are 8-bit mu-law.
    sample_output: str = "mulaw"
    mulaw_bits: int = 8
    mixtures: int = 10
    # A tokenizer between encoder and decoders (umt.quantization.tokenizer): a residual VQ of
    # `codebooks` codebooks of `codebook_size` vectors; 0 = none, the latent stays continuous.
    codebooks: int = 0
    codebook_size: int = 256
    domains: list[str] = field(default_factory=list)
    # How translation renders each domain unless its flags say otherwise: {domain: {"temperature":
    # T, "flutter": F}} (umt.translator.Sampling; chosen on the val split, `umt export --sampling`).
    sampling: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def spectral(self) -> bool:
        """Decoders are frame network + excited renderer."""
        return self.decoder_type == "spectral"

    @property
    def uses_spectrum(self) -> bool:
        return self.encoder_input == "spectrum" or self.spectral

    @property
    def latent_hop(self) -> int:
        """Samples per latent frame."""
        return self.pool * self.latent_stride

    @property
    def excitation_bands(self) -> int:
        return self.spectrum_bins // 12

    @property
    def encoder_receptive_field(self) -> int:
        """Inputs (samples, or spectrum frames) that one encoder output sees (centred, before pooling)."""
        return 1 + 2 + self.encoder_blocks * 2 * (2**self.encoder_layers - 1)

    def check(self) -> None:
        """Refuse settings the model cannot be built with."""
        if self.encoder_input not in ("waveform", "spectrum"):
            raise UserError(f"encoder_input {self.encoder_input!r}: choose waveform or spectrum")
        if self.decoder_type not in ("wavenet", "spectral"):
            raise UserError(f"decoder_type {self.decoder_type!r}: choose wavenet or spectral")
        if self.codebooks < 0 or (self.codebooks and self.codebook_size < 2):
            raise UserError(
                f"codebooks {self.codebooks} of size {self.codebook_size}: need codebooks >= 0 and size >= 2"
            )
        if self.uses_spectrum and self.spectrum_bins % 12:
            raise UserError(f"spectrum_bins {self.spectrum_bins}: must be whole octaves (a multiple of 12)")
        sample_output(self.sample_output, self.mulaw_bits, self.mixtures)  # refuses unknown kinds and sizes
        if not self.spectral and (self.sample_output, self.mulaw_bits) != ("mulaw", 8):
            raise UserError(f"sample_output {self.sample_output} ({self.mulaw_bits} bits): only a spectral model's renderers "
                            "predict other than 8-bit mu-law")  # fmt: skip
        if self.latent_stride < 1 or (
            self.latent_stride > 1 and not (self.encoder_input == "spectrum" and self.spectral)
        ):
            raise UserError(
                f"latent_stride {self.latent_stride}: must be 1, or more with a spectrum encoder and spectral decoders"
            )

    @property
    def frame_receptive_field(self) -> int:
        """Frames one frame network prediction sees (centred)."""
        return 1 + 2 + self.frame_blocks * 2 * (2**self.frame_layers - 1)

    @property
    def decoder_receptive_field(self) -> int:
        """Past samples one decoder prediction depends on (the input is shifted by one)."""
        return self.decoder_blocks * (2**self.decoder_layers - 1) + 1


def parse_settings(items: list[str]) -> dict:
    """['latent_channels=16', 'render_residual=false'] -> {'latent_channels': 16, 'render_residual': False},
    each value read as the type of that ModelConfig field."""
    defaults = ModelConfig()
    settings = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not hasattr(defaults, name) or name == "domains":
            raise UserError(
                f"--model-set {item}: expected NAME=VALUE with NAME a model setting (see umt.model.ModelConfig)"
            )
        kind = type(getattr(defaults, name))
        try:
            value = {"true": True, "false": False}[text.lower()] if kind is bool else kind(text)
        except (KeyError, ValueError):
            raise UserError(f"--model-set {item}: {text!r} is not a {kind.__name__}") from None
        settings[name] = value
    return settings


def shift_right(codes: torch.Tensor) -> torch.Tensor:
    """Teacher forcing of an 8-bit mu-law decoder: the input at t is the code at t-1."""
    return shift_targets(codes, SILENCE)


@dataclass
class Predictions:
    """What UMT.forward predicts of a batch; umt.losses.terms makes the loss terms of it.

    latent: [D * B, frames, C] what the decoders read, for the domain-confusion classifier;
    tokens: the tokenizer's result, if the model has one (commitment, codebook streams);
    renders: per domain, a WaveNet's teacher-forced output: (its SampleOutput, the output's
            parameters, the targets as that output codes them);
    spectra: per domain, a frame network's (predicted levels, flutter scale or None, real levels);
    translations: when asked for, (the levels another domain's frame network predicts of a
            domain's crops, the crops' real levels), one pair per domain.
    """

    latent: torch.Tensor | None = None
    tokens: QuantizedResult | None = None
    renders: dict[str, tuple[SampleOutput, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    spectra: dict[str, tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = field(default_factory=dict)
    translations: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


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
                cfg.sample_rate, cfg.pool, cfg.spectrum_midi_low, cfg.spectrum_bins
            )
            self.register_buffer(
                "freqs", spectral.bin_frequencies(cfg.spectrum_midi_low, cfg.spectrum_bins), persistent=False
            )
        self.tokenizer = Tokenizer(cfg.latent_channels, cfg.codebooks, cfg.codebook_size) if cfg.codebooks else None

    def encoder_input(self, audio: torch.Tensor) -> torch.Tensor:
        """What the encoder reads from audio [B, T]: the waveform, or its spectrum levels [B, T/pool + 1, bins]."""
        if self.cfg.encoder_input == "spectrum":
            return spectral.level(self.spectrum(audio)[0])
        return audio

    def latent(self, encoder_input: torch.Tensor) -> torch.Tensor:
        """Encoder input (see encoder_input) -> latent [B, frames, C]."""
        return self.encoder(encoder_input)

    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Mu-law codes [B, T] -> latent [B, frames, C] (T / pool frames; T / pool + 1 over the spectrum)."""
        return self.latent(self.encoder_input(mu_law_decode(codes)))

    def quantize(self, latent: torch.Tensor) -> tuple[torch.Tensor, QuantizedResult | None]:
        """What the decoders read of a latent [B, F, C]: through the tokenizer if there is one."""
        if self.tokenizer is None:
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
        if self.cfg.render_residual:
            audio = audio.float() - excitation.float().sum(-1)
        return self.decoders[domain].renderer.output.encode(audio)

    def waveform(self, generated: torch.Tensor, excitation: torch.Tensor | None) -> torch.Tensor:
        """Audio [..., T] of what a WaveNet generated, decoded to floats [..., T] (the inverse of
        render_targets): itself, or with render_residual itself plus the excitation, summed
        over its bands [..., T]."""
        audio = generated
        if self.cfg.render_residual:
            audio = (audio + excitation.to(audio.device)).clamp(-1.0, 1.0)
        return audio

    def forward(self, batch: dict[str, torch.Tensor], domains: list[str], translate: bool = False) -> Predictions:
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
        """
        if not self.cfg.spectral:
            n_domains, batch_size, t = batch["targets"].shape
            latent, tokens = self.quantize(self.encode(batch["inputs"].reshape(n_domains * batch_size, t)))
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
            out.latent, out.tokens = self.quantize(self.latent(batch["levels_in"].flatten(0, 1)))
            per_domain = out.latent.unflatten(0, (n_domains, batch_size))
            for d, name in enumerate(domains):
                predicted, scale = self.decoders[name].spectrum_and_flutter(per_domain[d], frames)
                out.spectra[name] = (predicted, scale, batch["levels"][d])
            if translate and n_domains > 1:
                shift = int(torch.randint(1, n_domains, ()))
                for d in range(n_domains):
                    target = self.decoders[domains[(d + shift) % n_domains]]
                    out.translations.append((target.spectrum(per_domain[d], frames), batch["levels"][d]))
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
    unit = cfg.pool if cfg.encoder_input == "spectrum" else 1  # samples per encoder input step
    lines = [
        (
            f"encoder {enc / 1e6:.2f} M params over the {cfg.encoder_input}, receptive field "
            f"{cfg.encoder_receptive_field * unit * ms:.0f} ms, latent {cfg.latent_channels} x "
            f"{cfg.sample_rate / cfg.latent_hop:g} Hz"
        ),
        (
            f"decoder ({cfg.decoder_type}) {dec / 1e6:.2f} M params each x {len(cfg.domains)}, WaveNet receptive field "
            f"{cfg.decoder_receptive_field} samples ({cfg.decoder_receptive_field * ms:.0f} ms)"
        ),
        f"classifier {cls / 1e3:.1f} k params",
    ]
    if cfg.codebooks:
        lines.insert(1, f"tokenizer: residual VQ, {cfg.codebooks} codebooks of {cfg.codebook_size} "
                        f"({cfg.codebooks * math.log2(cfg.codebook_size):.0f} bits a frame)")  # fmt: skip
    if cfg.spectral:
        lines.insert(2, f"frame networks: {cfg.spectrum_bins} semitone bins from MIDI {cfg.spectrum_midi_low}, "
                        f"receptive field {cfg.frame_receptive_field * cfg.pool * ms:.0f} ms")  # fmt: skip
    return "\n".join(lines)

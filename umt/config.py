"""A model's settings (ModelConfig): what every model has at the top, each part's own settings
nested under its name.

A setting is named by its path: "latent_channels", "encoder.channels", "wavenet.output",
"frames.flutter" (`umt train --model-set NAME=VALUE`; a checkpoint stores the nested dict).
Models saved before the nesting stored one flat dict ("encoder_channels", "render_residual");
FLAT_NAMES reads those names, in checkpoints and on the command line alike.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from umt.errors import UserError
from umt.outputs import sample_output


@dataclass
class EncoderConfig:
    """The shared encoder: a non-causal residual stack, kernel 3, dilations 1 .. 2**(layers-1) per block."""

    input: str = "waveform"  # waveform | spectrum (the log semitone spectrum at the frame rate)
    blocks: int = 3
    layers: int = 10
    channels: int = 128

    @property
    def receptive_field(self) -> int:
        """Inputs (samples, or spectrum frames) that one output sees (centred, before pooling)."""
        return 1 + 2 + self.blocks * 2 * (2**self.layers - 1)


@dataclass
class WaveNetConfig:
    """Each domain's WaveNet: the paper's decoder, or a spectral decoder's renderer. Causal,
    kernel 2, dilations 1 .. 2**(layers-1) per block."""

    blocks: int = 4
    layers: int = 14
    residual_channels: int = 128
    skip_channels: int = 128
    # What it predicts per sample (umt.outputs): "mulaw", a softmax over 2**mulaw_bits codes
    # (the paper, 8 bits), or "logistic", a mixture of `mixtures` logistics over the 16-bit
    # sample value. The paper's decoders (decoder_type "wavenet") are 8-bit mu-law.
    output: str = "mulaw"
    mulaw_bits: int = 8
    mixtures: int = 10
    # a renderer models the audio minus its excitation (its output is the excitation plus what
    # it samples) instead of the audio itself
    residual: bool = False

    @property
    def receptive_field(self) -> int:
        """Past samples one prediction depends on (the input is shifted by one)."""
        return self.blocks * (2**self.layers - 1) + 1


@dataclass
class SpectrumConfig:
    """The semitone spectrum the spectral recipe reads and predicts (umt.spectral)."""

    midi_low: int = 24  # lowest semitone bin (C1, 32.7 Hz)
    bins: int = 96  # eight octaves

    @property
    def bands(self) -> int:
        """Octave bands of the harmonic excitation."""
        return self.bins // 12


@dataclass
class FrameConfig:
    """A spectral decoder's frame network: the domain's spectrum from the latent (non-causal)."""

    blocks: int = 2
    layers: int = 6
    channels: int = 128
    # Also predict the flutter of each bin's level: its frame-to-frame movement about a 5-frame
    # moving average, which an L1 prediction averages away (a Laplace scale per bin and frame,
    # by maximum likelihood). Translation samples that flutter back (Translator's `flutter`):
    # without it the benchmark judge hears no organ in the organ translations (0 of 24), with
    # the real audio's own flutter on the prediction, all of them.
    flutter: bool = False

    @property
    def receptive_field(self) -> int:
        """Frames one prediction sees (centred)."""
        return 1 + 2 + self.blocks * 2 * (2**self.layers - 1)


@dataclass
class ClassifierConfig:
    """The domain-confusion classifier: 1x1 convs with ELU, averaged over time."""

    layers: int = 3
    channels: int = 100
    # 0: the paper's classifier, which reads each latent frame alone. n > 0: it first reads the
    # latent through n non-causal dilated layers (dilations 1..2**(n-1), kernel 3), so it can
    # see domain traits that only show over time (how notes start and decay), as the decoders can.
    context: int = 0


@dataclass
class TokenizerConfig:
    """A residual VQ between encoder and decoders (umt.quantization.tokenizer): `codebooks`
    codebooks of `codebook_size` vectors; 0 = none, the latent stays continuous."""

    codebooks: int = 0
    codebook_size: int = 256
    # residual blocks (per frame, two-layer perceptrons) before the quantiser and as many after:
    # with the encoder frozen, what the independence loss can reshape (0: a linear map each side)
    layers: int = 0


@dataclass
class ModelConfig:
    sample_rate: int = 16000
    # The recipe: "wavenet" decoders are the paper's; a "spectral" decoder is a frame network
    # that predicts its domain's semitone spectrum from the latent, then a WaveNet that renders
    # it, handed a harmonic excitation built from that spectrum (umt.spectral, docs/spectral-recipe.md).
    decoder_type: str = "wavenet"  # wavenet | spectral
    latent_channels: int = 64
    pool: int = 800  # samples per latent frame (800 at 16 kHz = 20 Hz); over the spectrum, its hop
    # Over the spectrum: spectrum frames averaged into one latent frame (1: the latent at the
    # frame rate, 100 Hz at pool 160; 5: 20 Hz, the paper's rate); the frame networks repeat
    # each latent frame that many times and predict the spectrum at the frame rate.
    latent_stride: int = 1
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    wavenet: WaveNetConfig = field(default_factory=WaveNetConfig)
    spectrum: SpectrumConfig = field(default_factory=SpectrumConfig)
    frames: FrameConfig = field(default_factory=FrameConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    domains: list[str] = field(default_factory=list)
    # How translation renders each domain unless its flags say otherwise: {domain: {"temperature":
    # T, "flutter": F}} (umt.translator.Sampling; chosen on the val split, `umt export --sampling`).
    sampling: dict = field(default_factory=dict)

    # ------------------------------------------------------------ reading and writing

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """A config from a checkpoint's dict, nested or (saved before the nesting) flat; names it
        does not know are left out (a newer checkpoint's)."""
        return cls().with_settings(settings_of(data))

    def to_dict(self) -> dict:
        return asdict(self)

    def with_settings(self, settings: dict[str, Any]) -> ModelConfig:
        """A copy with each setting (by path, or by a flat name of FLAT_NAMES) set."""
        cfg = copy.deepcopy(self)
        for name, value in settings.items():
            *parts, last = canonical(name).split(".")
            owner = cfg
            for part in parts:
                owner = getattr(owner, part)
            setattr(owner, last, value)
        return cfg

    # ------------------------------------------------------------ what follows from the settings

    @property
    def spectral(self) -> bool:
        """Decoders are frame network + excited renderer."""
        return self.decoder_type == "spectral"

    @property
    def uses_spectrum(self) -> bool:
        return self.encoder.input == "spectrum" or self.spectral

    @property
    def latent_hop(self) -> int:
        """Samples per latent frame."""
        return self.pool * self.latent_stride

    def check(self) -> None:
        """Refuse settings the model cannot be built with."""
        if self.encoder.input not in ("waveform", "spectrum"):
            raise UserError(f"encoder.input {self.encoder.input!r}: choose waveform or spectrum")
        if self.decoder_type not in ("wavenet", "spectral"):
            raise UserError(f"decoder_type {self.decoder_type!r}: choose wavenet or spectral")
        tok = self.tokenizer
        if tok.codebooks < 0 or (tok.codebooks and tok.codebook_size < 2) or tok.layers < 0:
            raise UserError(f"tokenizer: {tok.codebooks} codebooks of size {tok.codebook_size}, {tok.layers} layers: "
                            "need codebooks >= 0, size >= 2 and layers >= 0")  # fmt: skip
        if self.uses_spectrum and self.spectrum.bins % 12:
            raise UserError(f"spectrum.bins {self.spectrum.bins}: must be whole octaves (a multiple of 12)")
        w = self.wavenet
        sample_output(w.output, w.mulaw_bits, w.mixtures)  # refuses unknown kinds and sizes
        if not self.spectral and (w.output, w.mulaw_bits) != ("mulaw", 8):
            raise UserError(f"wavenet.output {w.output} ({w.mulaw_bits} bits): only a spectral model's renderers "
                            "predict other than 8-bit mu-law")  # fmt: skip
        if self.latent_stride < 1 or (
            self.latent_stride > 1 and not (self.encoder.input == "spectrum" and self.spectral)
        ):
            raise UserError(
                f"latent_stride {self.latent_stride}: must be 1, or more with a spectrum encoder and spectral decoders"
            )


# the flat names of models saved before the nesting, and the paths they became
FLAT_NAMES = {
    "encoder_input": "encoder.input", "encoder_blocks": "encoder.blocks", "encoder_layers": "encoder.layers",
    "encoder_channels": "encoder.channels",
    "decoder_blocks": "wavenet.blocks", "decoder_layers": "wavenet.layers",
    "residual_channels": "wavenet.residual_channels", "skip_channels": "wavenet.skip_channels",
    "sample_output": "wavenet.output", "mulaw_bits": "wavenet.mulaw_bits", "mixtures": "wavenet.mixtures",
    "render_residual": "wavenet.residual",
    "spectrum_midi_low": "spectrum.midi_low", "spectrum_bins": "spectrum.bins",
    "frame_blocks": "frames.blocks", "frame_layers": "frames.layers", "frame_channels": "frames.channels",
    "spectrum_flutter": "frames.flutter",
    "classifier_layers": "classifier.layers", "classifier_channels": "classifier.channels",
    "classifier_context": "classifier.context",
    "codebooks": "tokenizer.codebooks", "codebook_size": "tokenizer.codebook_size",
}  # fmt: skip


def canonical(name: str) -> str:
    """A setting's path: itself, or the path of a flat name of FLAT_NAMES."""
    return FLAT_NAMES.get(name, name)


def _paths(data: dict, prefix: str = "") -> dict[str, Any]:
    """A nested dict's leaves by path ({"encoder": {"channels": 64}} -> {"encoder.channels": 64}),
    flat names made paths. `sampling` is a leaf, a dict as a whole."""
    out = {}
    for key, value in data.items():
        name = canonical(prefix + key)
        if isinstance(value, dict) and name != "sampling":
            out.update(_paths(value, name + "."))
        else:
            out[name] = value
    return out


def _default(name: str) -> Any:
    """The default value of a setting by path; KeyError if there is none such."""
    owner: Any = ModelConfig()
    for part in canonical(name).split("."):
        if not is_dataclass(owner) or part not in {f.name for f in fields(owner)}:
            raise KeyError(name)
        owner = getattr(owner, part)
    if is_dataclass(owner):  # a part, not a setting
        raise KeyError(name)
    return owner


def is_setting(name: str) -> bool:
    """Whether `name` is a setting's path (or a flat name of FLAT_NAMES)."""
    try:
        _default(name)
    except KeyError:
        return False
    return True


def parse_settings(items: list[str]) -> dict[str, Any]:
    """['latent_channels=16', 'wavenet.residual=false'] -> {'latent_channels': 16, 'wavenet.residual': False}
    (paths; a flat name of FLAT_NAMES read as its path), each value read as that setting's type."""
    settings = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name in ("domains", "sampling") or not is_setting(name):
            raise UserError(f"--model-set {item}: expected NAME=VALUE with NAME a model setting such as "
                            "latent_channels or encoder.channels (see umt/config.py)")  # fmt: skip
        kind = type(_default(name))
        try:
            value = {"true": True, "false": False}[text.lower()] if kind is bool else kind(text)
        except (KeyError, ValueError):
            raise UserError(f"--model-set {item}: {text!r} is not a {kind.__name__}") from None
        settings[canonical(name)] = value
    return settings


def settings_of(data: dict) -> dict[str, Any]:
    """The settings a stored config dict (nested or flat) names, by path: what a checkpoint fixes."""
    return {name: value for name, value in _paths(data).items() if is_setting(name)}

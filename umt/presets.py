"""Presets: a model size and the training batch that suits it, one row per preset.

The training defaults (crops per domain, crop lengths, the confusion term) apply unless a
flag of `umt train` says otherwise; the model sizes are fixed when a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from umt.config import (
    ClassifierConfig,
    EncoderConfig,
    FrameConfig,
    ModelConfig,
    SpectrumConfig,
    WaveNetConfig,
    is_setting,
)
from umt.errors import UserError


@dataclass(frozen=True)
class Preset:
    model: ModelConfig
    training: dict = field(default_factory=dict)  # TrainConfig fields (see umt.training.config)


PRESETS: dict[str, Preset] = {
    # The paper's sizes: encoder 3 x 10 layers, 128 channels, latent 64 pooled by 800;
    # decoders 4 x 14 layers, 128 residual and skip channels; its batch and crop.
    "paper": Preset(ModelConfig(), {"batch_size": 4, "crop": 12000}),
    # Trainable on two CPU cores in hours: receptive field 64 ms, 20 Hz latent as the paper;
    # crops of 0.5 s, about eight decoder receptive fields.
    "small": Preset(ModelConfig(
        encoder=EncoderConfig(blocks=2, layers=8, channels=64),
        wavenet=WaveNetConfig(blocks=2, layers=9, residual_channels=64, skip_channels=64),
    ), {"batch_size": 8, "crop": 8000}),
    # The spectral recipe for 2-core CPUs (docs/spectral-recipe.md): a frame-rate encoder over the
    # log semitone spectrum (100 Hz, receptive field 5.1 s), frame networks that predict each
    # domain's spectrum (2.6 s), and small excited WaveNet renderers (32 ms of past); a
    # confusion classifier that reads 1.3 s of latent, a bounded confusion term and the timbre
    # augmentation, which together raised target accuracy from 0.44 to 0.78 (section 5 there);
    # and the translation-chroma term, which raised chroma similarity from 0.80 to 0.85 (section 6).
    "spectral": Preset(ModelConfig(
        decoder_type="spectral", pool=160, latent_channels=64,
        encoder=EncoderConfig(input="spectrum", blocks=2, layers=7, channels=128),
        frames=FrameConfig(blocks=2, layers=6, channels=128),
        wavenet=WaveNetConfig(blocks=2, layers=8, residual_channels=32, skip_channels=32, residual=True),
        classifier=ClassifierConfig(context=6),
    ), {"batch_size": 16, "crop": 32000, "render_batch_size": 8, "render_crop": 2400, "confusion": "uniform",
        "timbre_augment": 15.0, "loss_weights": {"translation_chroma": 0.3}}),
    # For tests: a few thousand parameters, 100-sample latent frames.
    "tiny": Preset(ModelConfig(
        latent_channels=8, pool=100,
        encoder=EncoderConfig(blocks=1, layers=4, channels=16),
        wavenet=WaveNetConfig(blocks=1, layers=5, residual_channels=16, skip_channels=16),
        classifier=ClassifierConfig(layers=3, channels=16),
    ), {"batch_size": 2, "crop": 4000}),
    "tiny-spectral": Preset(ModelConfig(
        decoder_type="spectral", pool=160, latent_channels=8,
        encoder=EncoderConfig(input="spectrum", blocks=1, layers=3, channels=16),
        spectrum=SpectrumConfig(midi_low=36, bins=72),
        frames=FrameConfig(blocks=1, layers=3, channels=16),
        wavenet=WaveNetConfig(blocks=1, layers=5, residual_channels=16, skip_channels=16, residual=True),
        classifier=ClassifierConfig(layers=3, channels=16, context=2),
    ), {"batch_size": 2, "crop": 3200, "render_batch_size": 2, "render_crop": 800, "confusion": "uniform",
        "timbre_augment": 15.0}),
}  # fmt: skip


def preset(name: str, domains: list[str], **overrides) -> ModelConfig:
    """The model config of a preset for these domains, settings in overrides (by path, e.g.
    "encoder.channels", or a flat name of umt.config.FLAT_NAMES) over the preset's."""
    if name not in PRESETS:
        raise UserError(f"preset {name!r}: choose from {', '.join(PRESETS)}")
    unknown = sorted(key for key in overrides if key == "domains" or not is_setting(key))
    if unknown:
        raise UserError(f"no model setting named {', '.join(unknown)}")
    cfg = PRESETS[name].model.with_settings({**overrides, "domains": list(domains)})
    cfg.check()
    return cfg

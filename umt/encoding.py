"""Encoding recordings of any length: the latent of a range of frames, computed in windows with\nmargins that cover the encoder's receptive field (and the spectrum's kernels), equal to\nencoding the whole recording at once, from audio read a range at a time."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from umt import spectral
from umt.audio import mu_law_decode, mu_law_encode, read_padded
from umt.model import UMT

ENCODE_WINDOW_SECONDS = 30.0


Reader = Callable[[int, int], np.ndarray]  # (start, stop) -> those samples, zeros outside the recording


def encode_long(
    model: UMT, read: Reader, samples: int, window_frames: int, first: int = 0, last: int | None = None
) -> torch.Tensor:
    """Latent frames first .. last - 1 [last - first, C] (default: all) of mono audio of
    `samples` samples (a multiple of pool) read by `read`; over the spectrum there are
    samples / hop + 1 spectrum frames in latent frames of latent_stride of them. Computed in
    windows of `window_frames` latent frames plus a margin of context on each side that
    covers the encoder's receptive field (and the spectrum's kernels): equal to encoding the
    whole recording at once, in memory that does not grow with it."""
    cfg = model.cfg
    over_spectrum = cfg.encoder.input == "spectrum"
    step = cfg.latent_stride if over_spectrum else cfg.pool  # inputs per latent frame
    inputs = samples // cfg.pool + 1 if over_spectrum else samples
    frames = -(-inputs // step)
    first, last = max(first, 0), frames if last is None else min(last, frames)
    margin = math.ceil(cfg.encoder.receptive_field / 2 / step)
    device = next(model.parameters()).device
    parts = [torch.zeros(0, cfg.latent_channels, device=device)]
    with torch.no_grad():
        for start in range(first, last, window_frames):
            stop = min(last, start + window_frames)
            lo, hi = max(0, start - margin), min(frames, stop + margin)
            a, b = lo * step, min(hi * step, inputs)
            if over_spectrum:
                latent = model.latent(_heard_levels(model, read, samples, a, b)[None])[0]
            else:
                latent = model.encode(mu_law_encode(torch.from_numpy(read(a, b)).to(device))[None])[0]
            parts.append(latent[start - lo : stop - lo])
    return torch.cat(parts)


def _heard_levels(model: UMT, read: Reader, samples: int, first: int, last: int) -> torch.Tensor:
    """Spectrum levels [last - first, bins] of frames first .. last - 1 of a recording as the
    encoder hears it in training (through mu-law), silence beyond its `samples`."""
    hop, margin = model.cfg.pool, model.spectrum.margin
    start, stop = (first - margin) * hop, (last + margin) * hop
    audio = torch.from_numpy(read(start, stop))
    inside = slice(max(0, -start), max(0, min(stop, samples) - start))
    audio[inside] = mu_law_decode(mu_law_encode(audio[inside]))
    amp, _ = model.spectrum(audio[None].to(model.freqs.device))
    return spectral.level(amp[0, margin : margin + last - first])


def array_reader(audio: np.ndarray) -> Reader:
    """A Reader of samples held in memory."""
    return lambda start, stop: read_padded(start, stop, audio.size, lambda lo, hi: audio[lo:hi])

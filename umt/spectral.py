"""The semitone spectrum and the harmonic excitation: the frame-rate side of the spectral recipe.

The semitone spectrum of a recording is the amplitude (and phase) of a constant-Q transform
with one bin per equal-tempered semitone, MIDI `midi_low` upwards, at `hop` samples a frame
(nnAudio's CQT, so it runs on a GPU too). Amplitudes are calibrated so that a sinusoid of
amplitude a at a bin's frequency reads a in that bin.

The excitation turns such a spectrum back into oscillation at the sample rate: a bank of
sinusoids at the bin frequencies, each weighted by its bin's amplitude, crossfaded linearly
from frame to frame. It is what the WaveNet renderer is handed, so that it only has to shape
timbre and noise around pitches that already sound. Only the spectral peaks sound (`peaks`):
  - in training, with the target's own phases (the renderer learns to follow them);
  - at inference, with free-running phases (phase_k(n) = phase0_k + omega_k n).
With a test clip's own peaks and free phases, the excitation already has the clip's pitch
content: chroma similarity 0.99 to the clip on the benchmark (docs/spectral-recipe.md). Bins
are summed into octave bands, one input channel each, so the renderer can weigh the registers
differently.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from umt.errors import UserError

LOG_FLOOR = 1e-4  # amplitude floor of the log spectrum (-80 dB)


def bin_frequencies(midi_low: int, bins: int) -> torch.Tensor:
    """Hz of each semitone bin, float64."""
    return 440.0 * 2.0 ** ((torch.arange(bins, dtype=torch.float64) + midi_low - 69) / 12)


class SemitoneSpectrum(nn.Module):
    """audio [B, T] -> amplitude and phase [B, T // hop + 1, bins], frame f centred on sample f * hop.

    The last frame is centred on sample T when hop divides T: F frames of conditioning plus
    the one the excitation crossfades into at the end."""

    def __init__(self, sample_rate: int, hop: int, midi_low: int, bins: int):
        super().__init__()
        from nnAudio.features import CQT1992v2

        self.hop, self.sample_rate = hop, sample_rate
        freqs = bin_frequencies(midi_low, bins)
        if freqs[-1] >= sample_rate / 2:
            raise UserError(
                f"{bins} semitone bins from MIDI {midi_low} reach {freqs[-1]:.0f} Hz, past the Nyquist frequency of "
                f"{sample_rate} Hz audio: use fewer bins (spectrum_bins) or a higher --sample-rate"
            )
        self.cqt = CQT1992v2(
            sr=sample_rate, hop_length=hop, fmin=float(freqs[0]), n_bins=bins, bins_per_octave=12,
            output_format="Complex", pad_mode="constant", verbose=False,  # silence beyond the ends
        )  # fmt: skip
        # The transform's kernels follow from the settings: rebuilt, never stored in checkpoints.
        for name, buffer in list(self.cqt.named_buffers(recurse=False)):
            self.cqt.register_buffer(name, buffer, persistent=False)
        # Response of each bin to a unit sinusoid at its own frequency (mid-signal, away from the edges).
        n = torch.arange(4 * hop + 2 * self.cqt.kernel_width, dtype=torch.float64)
        probe = torch.cos(2 * math.pi * freqs[:, None] * n / sample_rate).float()
        with torch.no_grad():
            response = self.cqt(probe)[..., probe.shape[1] // hop // 2, :].norm(dim=-1)  # [bins (signal), bins]
        self.register_buffer("gain", response.diagonal().clone(), persistent=False)
        self.margin = -(-self.cqt.kernel_width // (2 * hop)) + 1  # frames a kernel reaches on either side

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.cqt(audio.float())  # [B, bins, frames, 2]
        spectrum = torch.complex(x[..., 0], x[..., 1]).transpose(1, 2)
        return spectrum.abs() / self.gain, spectrum.angle()


def level(amplitude: torch.Tensor) -> torch.Tensor:
    """Log amplitude scaled to 0 at LOG_FLOOR (-80 dB) and 1 at a full-scale sinusoid: what the
    encoder reads, the frame networks predict (L1) and the renderers are conditioned on."""
    return 1 + torch.log(amplitude.clamp_min(LOG_FLOOR)) / -math.log(LOG_FLOOR)


def chroma(levels: torch.Tensor) -> torch.Tensor:
    """Levels [..., bins] (whole octaves) -> chroma [..., 12]: each pitch class's amplitude
    summed over the octaves, as a CQT chroma folds them (classes counted from the lowest bin)."""
    amp = amplitude(levels)
    return amp.unflatten(-1, (amp.shape[-1] // 12, 12)).sum(-2)


def chroma_distance(levels: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """1 - cosine between the chroma of levels and of reference [B, F, bins], averaged over the
    frames where the reference sounds (any bin above -60 dB): 0 when every sounding frame has
    the reference's pitch classes in its proportions, whatever the octaves and the loudness."""
    sounding = (reference > 0.25).any(-1).float()  # level 0.25 = -60 dB (a level unit is 80 dB)
    cosine = F.cosine_similarity(chroma(levels.float()), chroma(reference.float()), dim=-1, eps=1e-6)
    return ((1 - cosine) * sounding).sum() / sounding.sum().clamp_min(1.0)


def apply_gain(levels: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
    """Levels [..., bins] of the sound with a gain of `db` [bins] dB per bin; bins at the floor
    (silence) stay there, and nothing goes below it."""
    shifted = (levels + db / (-20 * math.log10(LOG_FLOOR))).clamp_min(0.0)  # a level unit is 80 dB
    return torch.where(levels > 0, shifted, levels)


def amplitude(levels: torch.Tensor) -> torch.Tensor:
    """The inverse of `level` (levels at or below 0 give silence)."""
    return torch.where(levels > 0, LOG_FLOOR ** (1 - levels), torch.zeros_like(levels))


def peaks(amplitude: torch.Tensor) -> torch.Tensor:
    """Keep only bins that are local maxima across frequency ([..., bins]).

    A partial leaks into both neighbouring semitone bins at about half its amplitude; with
    free-running phases those neighbours would sound as semitone clusters."""
    left = F.pad(amplitude, (1, 0))[..., :-1]
    right = F.pad(amplitude, (0, 1))[..., 1:]
    return amplitude * ((amplitude >= left) & (amplitude >= right))


def free_phases(frames: int, batch: int, freqs: torch.Tensor, hop: int, sample_rate: int,
                generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Phases [B, frames, bins] of sinusoids running freely at the bin frequencies from random
    starting phases: the inference-time counterpart of a recording's own phases."""
    start = torch.rand(batch, 1, freqs.numel(), generator=generator, dtype=torch.float64) * (2 * math.pi)
    advance = 2 * math.pi * freqs * hop / sample_rate  # per frame, float64: exact over hours
    turns = torch.arange(frames, dtype=torch.float64)[:, None] * advance
    return torch.remainder(start + turns, 2 * math.pi).float()


class Oscillators:
    """Sinusoids running freely at the bin frequencies (free_phases) under an amplitude
    envelope [F, bins] (a spectrum's peaks) of frames offset .. offset + F - 1 (silence
    elsewhere): the inference-time excitation of a recording, synthesised a window of frames
    at a time, so that memory does not grow with the recording (held whole, the excitation
    takes 32 bytes a sample: 1.8 GB an hour). The phases count from frame 0, so banks over
    consecutive pieces of one recording join exactly."""

    def __init__(self, amplitude: torch.Tensor, freqs: torch.Tensor, hop: int, sample_rate: int,
                 generator: torch.Generator | None = None, offset: int = 0):  # fmt: skip
        self.amplitude, self.freqs, self.hop, self.sample_rate, self.offset = amplitude, freqs, hop, sample_rate, offset
        self.start = free_phases(1, 1, freqs.cpu(), hop, sample_rate, generator)[0, 0].double()  # the phases of frame 0

    def window(self, first: int, last: int) -> torch.Tensor:
        """Excitation [(last - first) * hop, bands] of frames first .. last - 1, each crossfading
        into the next; windows side by side join exactly."""
        frames, bins = self.amplitude.shape
        amp = self.amplitude.new_zeros(last + 1 - first, bins)
        lo, hi = max(first, self.offset), min(last + 1, self.offset + frames)
        if lo < hi:
            amp[lo - first : hi - first] = self.amplitude[lo - self.offset : hi - self.offset]
        advance = 2 * math.pi * self.freqs.cpu() * self.hop / self.sample_rate
        turns = torch.arange(first, last + 1, dtype=torch.float64)[:, None] * advance
        phase = torch.remainder(self.start + turns, 2 * math.pi).float().to(amp.device)
        return excitation(amp[None], phase[None], self.freqs, self.hop, self.sample_rate)[0]

    def summed(self, first: int, last: int) -> torch.Tensor:
        """The excitation of frames first .. last - 1 summed over its bands [(last - first) * hop],
        a block at a time."""
        block = EXCITATION_BLOCK * 16
        parts = [self.window(f, min(f + block, last)).sum(-1) for f in range(first, last, block)]
        return torch.cat(parts) if parts else torch.zeros(0)


def excitation(amplitude: torch.Tensor, phase: torch.Tensor, freqs: torch.Tensor, hop: int, sample_rate: int,
               band: int = 12) -> torch.Tensor:  # fmt: skip
    """Sample-rate excitation [B, (F - 1) * hop, bins / band] from amplitude and phase [B, F, bins].

    Between the centres of frames f and f + 1, each bin sounds as the crossfade of its
    sinusoid anchored at frame f (amplitude and phase of f) and the one anchored at f + 1;
    where the phases run freely the two coincide and only the amplitude moves. Channel j
    sums bins j * band .. (j + 1) * band - 1 (octaves by default).
    """
    b, frames, bins = amplitude.shape
    omega = (2 * math.pi * freqs / sample_rate).to(amplitude.device, torch.float32)
    m = torch.arange(hop, device=amplitude.device, dtype=torch.float32)[:, None]  # sample within the frame
    fade = m / hop
    out = amplitude.new_empty(b, (frames - 1) * hop, bins // band)
    # in blocks of frames: the sum over bins is hop x bins floats per frame (3.7 GB for 10 minutes at once)
    for first in range(0, frames - 1, EXCITATION_BLOCK):
        last = min(frames - 1, first + EXCITATION_BLOCK)
        a0, a1 = amplitude[:, first:last, None], amplitude[:, first + 1 : last + 1, None]  # [B, n, 1, bins]
        p0, p1 = phase[:, first:last, None], phase[:, first + 1 : last + 1, None]
        wave = (1 - fade) * a0 * torch.cos(p0 + omega * m) + fade * a1 * torch.cos(p1 + omega * (m - hop))
        out[:, first * hop : last * hop] = wave.view(b, last - first, hop, bins // band, band).sum(-1).flatten(1, 2)
    return out


EXCITATION_BLOCK = 256  # frames of excitation computed at once


FLUTTER_FRAMES = 5  # the moving average flutter is measured about (50 ms at 100 frames/s)
FLUTTER_TAIL = 4.0  # sampled flutter is cut at this many scales (a Laplace draw beyond it: 1 in 55)


def smoothed(levels: torch.Tensor) -> torch.Tensor:
    """The moving average of levels [B, F, bins] over FLUTTER_FRAMES frames (centred, the ends
    repeated): the spectrum's movement slower than flutter (notes, attacks, decays)."""
    x = levels.float().transpose(1, 2)  # [B, bins, F]
    half = FLUTTER_FRAMES // 2
    return F.avg_pool1d(F.pad(x, (half, half), mode="replicate"), FLUTTER_FRAMES, stride=1).transpose(1, 2)


def flutter(levels: torch.Tensor) -> torch.Tensor:
    """Levels [B, F, bins] minus their moving average (smoothed): the frame-to-frame movement
    that a smooth prediction leaves out."""
    return levels.float() - smoothed(levels)


def flutter_draw(frames: int, bins: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draws [frames, bins] from a unit Laplace distribution, cut at FLUTTER_TAIL, so that one
    bin of one frame cannot jump by tens of dB."""
    u = torch.rand(frames, bins, generator=generator).clamp(1e-6, 1 - 1e-6) - 0.5
    return (-torch.sign(u) * torch.log1p(-2 * u.abs())).clamp(-FLUTTER_TAIL, FLUTTER_TAIL)


def add_flutter(levels: torch.Tensor, scale: torch.Tensor, amount: float, draw: torch.Tensor) -> torch.Tensor:
    """Levels [F, bins] with flutter amount x scale x draw (flutter_draw) in every sounding bin
    (level above 0); nothing goes below the floor."""
    return torch.where(levels > 0, (levels + amount * scale * draw).clamp_min(0.0), levels)


def shift_segment(
    levels: torch.Tensor, start: torch.Tensor, stop: torch.Tensor, semitones: torch.Tensor
) -> torch.Tensor:
    """The paper's pitch augmentation on a semitone spectrum: frames start..stop of row i of
    levels [B, F, bins] moved by semitones[i] (a fraction of a bin: linear interpolation)."""
    b, frames, bins = levels.shape
    source = torch.arange(bins, device=levels.device, dtype=torch.float32) - semitones[:, None]  # [B, bins]
    lo = source.floor().clamp(0, bins - 1)
    frac = (source - lo).clamp(0, 1)[:, None]
    hi = (lo + 1).clamp(max=bins - 1)
    pick = lambda idx: torch.gather(levels, 2, idx.long()[:, None].expand(b, frames, bins))
    shifted = (1 - frac) * pick(lo) + frac * pick(hi)
    outside = (source < 0) | (source > bins - 1)  # shifted in from beyond the range: silence
    shifted = shifted.masked_fill(outside[:, None], 0.0)
    t = torch.arange(frames, device=levels.device)[None]
    inside = ((t >= start[:, None]) & (t < stop[:, None]))[..., None]
    return torch.where(inside, shifted, levels)

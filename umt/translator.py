"""Translation of whole recordings: windowed encoding, chunked parallel decoding, stitching.

A recording of any length is
  1. encoded once, in overlapping windows wide enough for the encoder's receptive field, so
     the latent equals a whole-file encoding while memory stays bounded (a spectral encoder
     works at frame rate and takes the whole file at once);
  2. for a spectral decoder, turned into the target domain's semitone spectrum by its frame
     network, and that into an excitation with free-running phases over the whole file, so
     the oscillation runs on unbroken across chunks;
  3. cut into chunks of frames that are decoded side by side as one batch (chunks of
     several files share a batch). Each chunk starts a few frames early: the first ones warm
     the decoder up (they cover its receptive field, so the WaveNet has a past that sounds like
     the music when its own frames begin) and are dropped, the last of them is crossfaded
     (linearly: both sides render the same conditioning, so they are correlated and equal-power
     gains would bulge) with the end of the previous chunk, so chunks join without clicks, dips
     or resets;
  4. trimmed back to the input's exact length.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from umt import spectral
from umt.audio import mu_law_decode, mu_law_encode
from umt.data.spectra import analyse
from umt.errors import UserError
from umt.generate import PackedDecoder, generate
from umt.model import UMT

RENDERERS = ("wavenet", "sines")  # sines: the excitation itself, a preview of a spectral decoder without its WaveNet
MAX_WARMUP_SHARE = 4  # warm-up frames are at most a quarter of a chunk (decoders whose receptive field is long)
ENCODE_WINDOW_SECONDS = 10.0
STATE_BUDGET_BYTES = 2 << 30  # generation state the automatic batch size may use
MAX_AUTO_BATCH = 512


def encode_long(model: UMT, audio: torch.Tensor, window_frames: int) -> torch.Tensor:
    """Latent [F, C] of mono audio [N] (N a multiple of pool; over the spectrum F = N / hop + 1
    in latent frames of latent_stride spectrum frames), computed in windows of `window_frames`
    latent frames plus a margin of context on each side that covers the encoder's receptive
    field (and the spectrum's kernels); equal to encoding the whole file at once, in memory
    that does not grow with it beyond the audio and the latent."""
    cfg = model.cfg
    if cfg.encoder_input == "spectrum":
        heard = torch.cat([mu_law_decode(mu_law_encode(part)) for part in audio.split(1 << 20)])  # as in training
        inputs = spectral.level(analyse(model.spectrum, heard.cpu().numpy())[0]).to(audio.device)  # [N / hop + 1, bins]
        step = cfg.latent_stride  # inputs per latent frame
        encode = model.latent
    else:
        inputs, step = mu_law_encode(audio), cfg.pool
        encode = model.encode
    frames = -(-inputs.shape[0] // step)
    margin = math.ceil(cfg.encoder_receptive_field / 2 / step)
    parts = []
    with torch.no_grad():
        for first in range(0, frames, window_frames):
            last = min(frames, first + window_frames)
            lo, hi = max(0, first - margin), min(frames, last + margin)
            latent = encode(inputs[lo * step : hi * step].unsqueeze(0))[0]
            parts.append(latent[first - lo : last - lo])
    return torch.cat(parts)


@dataclass(frozen=True)
class Sampling:
    """How one domain is rendered: the WaveNet's sampling temperature (0: the likeliest value)
    and how much of the frame networks' predicted flutter is drawn onto the spectrum (0: none,
    the median spectrum; models without spectrum_flutter have none to give)."""

    temperature: float = 1.0
    flutter: float = 1.0


def sampling_of(model: UMT, temperature: float | None = None, flutter: float | None = None) -> dict[str, Sampling]:
    """Each domain's sampling: what is given here, else what the model stores for the domain
    (ModelConfig.sampling), else Sampling's defaults."""
    given = {k: v for k, v in (("temperature", temperature), ("flutter", flutter)) if v is not None}
    for name, value in given.items():
        if value < 0:
            raise UserError(f"--{name} {value:g}: must not be negative")
    return {d: Sampling(**{**model.cfg.sampling.get(d, {}), **given}) for d in model.cfg.domains}


@dataclass(frozen=True)
class Chunk:
    item: int  # which recording
    index: int  # which chunk of it
    first_frame: int  # in the recording's padded latent


class Translator:
    """Translates mono audio (float32 numpy at the model rate) into the model's domains."""

    def __init__(
        self,
        model: UMT,
        device: torch.device,
        batch_size: int | None = None,
        chunk_seconds: float = 0.5,
        temperature: float | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        streams: int | None = None,
        renderer: str = "wavenet",
        tokens: bool = False,
        flutter: float | None = None,
    ):
        cfg = model.cfg
        if tokens and model.tokenizer is None:
            raise UserError("the model has no tokenizer (fit one with `umt tokenizer train`)")
        self.tokens = tokens
        if renderer not in RENDERERS:
            raise UserError(f"--renderer {renderer}: choose from {', '.join(RENDERERS)}")
        if renderer == "sines" and not cfg.spectral:
            raise UserError("--renderer sines: the model's decoders predict no spectrum (it is not a spectral model)")
        self.renderer = renderer
        self.sampling = sampling_of(model, temperature, flutter)  # per domain
        self.model = model.to(device).eval()
        self.device, self.seed, self.streams = device, seed, streams
        self.pool = cfg.pool
        self.chunk_frames = max(1, round(chunk_seconds * cfg.sample_rate / cfg.pool))
        # frames before each chunk: warm-up for the decoder's receptive field, then the crossfade frame
        warmup = min(math.ceil(cfg.decoder_receptive_field / cfg.pool), self.chunk_frames // MAX_WARMUP_SHARE)
        self.overlap = max(1, warmup) + 1
        # Two chunks sampled independently are uncorrelated where nothing locks their phase: a
        # WaveNet alone, or the residual beside an excitation. Those join with equal-power gains;
        # audio locked to the excitation (the same on both sides) joins linearly.
        self.equal_power = cfg.render_residual or not cfg.spectral
        self.encode_frames = max(1, round(ENCODE_WINDOW_SECONDS * cfg.sample_rate / cfg.latent_hop))
        renderers = {d: model.decoders[d].renderer if cfg.spectral else model.decoders[d] for d in cfg.domains}
        self.packed = {d: PackedDecoder(r, cfg.pool, dtype) for d, r in renderers.items()}
        # By default as many chunks in parallel as 2 GiB of generation state allows (the paper
        # decoder keeps 4 s of history per layer: 34 MB a row): 63 rows for `paper`, 512 for `small`.
        per_row = next(iter(self.packed.values())).state_bytes_per_row()
        self.batch_size = batch_size or max(1, min(MAX_AUTO_BATCH, STATE_BUDGET_BYTES // per_row))
        with torch.no_grad():  # the conditioning of silence: the context before a recording starts
            self.silence = (
                torch.zeros(cfg.spectrum_bins, device=device) if cfg.spectral  # every level at the floor
                else model.encode(mu_law_encode(torch.zeros(1, cfg.pool, device=device)))[0, 0]
            )  # fmt: skip

    @property
    def domains(self) -> list[str]:
        return self.model.cfg.domains

    def encode(self, audio: np.ndarray) -> torch.Tensor:
        """Latent [F, C] of a recording, F = ceil(len / pool) (the last frame zero-padded; over
        the spectrum F + 1, the frame centred on the end included, in latent frames of
        latent_stride of them); with `tokens`, the latent its tokens stand for."""
        latent = self.continuous(audio)
        if not self.tokens:
            return latent
        with torch.no_grad():
            return self.model.quantize(latent[None])[0][0]

    def continuous(self, audio: np.ndarray) -> torch.Tensor:
        """The encoder's latent [F, C] of a recording (float samples in [-1, 1]; see encode)."""
        if audio.dtype.kind != "f":  # int16 PCM (a manifest's storage) would be clipped to full scale
            raise TypeError(f"audio must be float samples in [-1, 1], not {audio.dtype}")
        if audio.size < self.pool:
            raise UserError(f"too short ({audio.size} samples; one latent frame is {self.pool})")
        frames = math.ceil(audio.size / self.pool)
        padded = torch.zeros(frames * self.pool, device=self.device)
        padded[: audio.size] = torch.tensor(audio, device=self.device)
        return encode_long(self.model, padded, self.encode_frames)

    def tokenize(self, audio: np.ndarray) -> torch.Tensor:
        """The tokens [F, K] of a recording (the model must have a tokenizer)."""
        with torch.no_grad():
            return self.model.tokenizer(self.continuous(audio)[None]).codes[0]

    def from_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """The latent [F, C] that tokens [F, K] stand for."""
        with torch.no_grad():
            return self.model.tokenizer.decode(codes[None].to(self.device))[0]

    def spectrum(self, latent: torch.Tensor, domain: str) -> torch.Tensor:
        """A spectral decoder's predicted spectrum levels [len // pool + 1, bins] of a latent [F, C]
        (its median: no flutter; with a latent_stride, up to stride - 1 frames more: the last
        latent frame repeated; the audio rendered from them is cut to the recording's length)."""
        with torch.no_grad():
            return self._frame_per_sample(self.model.decoders[domain].spectrum(latent[None])[0].float())

    def _frame_per_sample(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame-network output [F, bins] with the frame the excitation crossfades into at the end
        (a waveform encoder has one frame per pool samples: the last repeated)."""
        if self.model.cfg.encoder_input != "spectrum":
            frames = torch.cat([frames, frames[-1:]])
        return frames

    def levels(self, audio: np.ndarray) -> torch.Tensor:
        """The spectrum levels [len // pool + 1, bins] of real audio, comparable with `spectrum`."""
        with torch.no_grad():
            return spectral.level(self.model.spectrum(torch.from_numpy(audio).to(self.device)[None])[0])[0]

    def conditioning(self, latent: torch.Tensor, domain: str, key: str) -> tuple[torch.Tensor, spectral.Oscillators | None]:
        """What the domain's WaveNet renders from a latent [F, C]: per-frame conditioning
        [F', C'] and, for a spectral decoder, the oscillators that synthesise its excitation
        [F' * pool, E] beside it, a window at a time.

        A spectral decoder's frame network predicts the spectrum levels (with spectrum_flutter,
        the domain's Sampling.flutter times their predicted flutter is drawn onto them); their peaks, with phases
        running freely from a start seeded by (seed, domain, key), make the excitation."""
        cfg = self.model.cfg
        if not cfg.spectral:
            return latent, None
        with torch.no_grad():
            levels, scale = self.model.decoders[domain].spectrum_and_flutter(latent[None])
            levels = self._frame_per_sample(levels[0].float())
            generator = torch.Generator().manual_seed(_chunk_seed(self.seed, domain, key, -1))
            amount = self.sampling[domain].flutter
            if scale is not None and amount > 0:
                levels = spectral.add_flutter(levels, self._frame_per_sample(scale[0]), amount, generator)
            amp = spectral.peaks(spectral.amplitude(levels))
            oscillators = spectral.Oscillators(amp, self.model.freqs, cfg.pool, cfg.sample_rate, generator)
        return levels[: levels.shape[0] - 1], oscillators

    def decode(
        self,
        latents: list[torch.Tensor],
        lengths: list[int],
        domain: str,
        keys: list[str],
        progress: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]:
        """Render each latent [F_i, C] in `domain`; returns audio trimmed to lengths[i].

        keys name the recordings (e.g. their paths): with the seed and the domain they seed
        each chunk's sampling, so a file's output does not depend on its batch-mates."""
        if domain not in self.packed:
            raise UserError(f"unknown domain {domain!r}; the model has {', '.join(self.domains)}")
        inputs = [self.conditioning(latent, domain, key) for latent, key in zip(latents, keys)]
        if self.renderer == "sines":
            with torch.no_grad():
                return [oscillators.audio(n).clamp(-1, 1).cpu().numpy() for (_, oscillators), n in zip(inputs, lengths)]
        # Chunks no longer than the longest recording: short inputs are not padded to a full chunk.
        c = min(self.chunk_frames, max(cond.shape[0] for cond, _ in inputs))
        k, p = self.overlap, self.pool
        padded = [self._pad(cond, c) for cond, _ in inputs]  # `k` frames of silence first: frame f of a recording is f + k
        chunks = [Chunk(item, j, j * c) for item, cond in enumerate(padded) for j in range((cond.shape[0] - k) // c)]
        outputs = [np.zeros(cond.shape[0] * p, dtype=np.float32) for cond in padded]
        for start in range(0, len(chunks), self.batch_size):
            batch = chunks[start : start + self.batch_size]
            window = [slice(ch.first_frame, ch.first_frame + c + k) for ch in batch]
            cond = torch.stack([padded[ch.item][w] for ch, w in zip(batch, window)])
            excitation = None
            if inputs[0][1] is not None:
                excitation = torch.stack([inputs[ch.item][1].window(w.start - k, w.stop - k) for ch, w in zip(batch, window)])
            seeds = [_chunk_seed(self.seed, domain, keys[ch.item], ch.index) for ch in batch]
            temperature = self.sampling[domain].temperature
            codes = generate(self.packed[domain], cond, temperature, seeds, self.streams, progress, excitation)
            audio = self.packed[domain].output.decode(codes).cpu().numpy()  # what the WaveNet plays: the audio, or the residual
            for ch, row in zip(batch, audio):
                self._stitch(outputs[ch.item], row, ch.first_frame * p)
        results = []
        for out, (_, oscillators), n in zip(outputs, inputs, lengths):
            audio = torch.from_numpy(out[k * p : k * p + n])
            if self.model.cfg.render_residual:  # the excitation runs unbroken over the whole file: added after the stitching
                with torch.no_grad():
                    audio = self.model.waveform(audio, oscillators.audio(n).cpu())
            results.append(audio.numpy())
        return results

    def _pad(self, cond: torch.Tensor, chunk: int) -> torch.Tensor:
        """`overlap` frames of silence before (the first chunk's warm-up), silence after up to a
        whole number of chunks."""
        tail = -cond.shape[0] % chunk
        return torch.cat([self.silence.expand(self.overlap, -1), cond, self.silence.expand(tail, -1)])

    def _stitch(self, out: np.ndarray, chunk: np.ndarray, at: int) -> None:
        """Write a chunk that starts at sample `at`: its warm-up frames are dropped, the frame
        after them crossfades with what the previous chunk left there, the rest is copied."""
        p = self.pool
        fade_at = at + (self.overlap - 1) * p
        ramp = (np.arange(p, dtype=np.float32) + 0.5) / p
        fade_in, fade_out = (np.sin(ramp * np.pi / 2), np.cos(ramp * np.pi / 2)) if self.equal_power else (ramp, 1 - ramp)
        join = slice(fade_at, fade_at + p)
        out[join] = out[join] * fade_out + chunk[fade_at - at : fade_at - at + p] * fade_in
        out[fade_at + p : at + chunk.size] = chunk[fade_at - at + p :]


def _chunk_seed(seed: int, domain: str, key: str, index: int) -> int:
    return zlib.crc32(f"{seed}\0{domain}\0{key}\0{index}".encode())

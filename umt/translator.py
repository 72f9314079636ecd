"""Translation of whole recordings: windowed encoding, chunked parallel decoding, stitching.

A recording of any length is rendered a span of frames at a time (a span fills one decoding
batch; several short recordings share one), so that memory does not grow with its length:
  1. each span's latent is encoded from the audio around it, in windows with margins that
     cover the encoder's receptive field (and the spectrum's kernels): equal to encoding the
     whole file at once;
  2. for a spectral decoder, the frame network turns the latent (with a margin for its own
     receptive field) into the target domain's semitone spectrum, and that into an
     excitation whose phases run freely from the recording's start, so the oscillation runs
     on unbroken across chunks and spans;
  3. the span is cut into chunks of frames that are decoded side by side as one batch.
     Each chunk starts a few frames early: the first ones warm the decoder up (they cover
     its receptive field, so the WaveNet has a past that sounds like the music when its own
     frames begin) and are dropped, the last of them is crossfaded with the end of the
     previous chunk (linearly where both sides follow the same excitation, so they are
     correlated and equal-power gains would bulge), so chunks join without clicks, dips or
     resets; a span holds back its last frame for the next span's first crossfade;
  4. handed out a span at a time, trimmed to the input's exact length.
Everything random (the WaveNet's sampling per chunk, the flutter per block of frames, the
oscillators' starting phases) is seeded by (seed, domain, recording key, position), so a
recording's translation does not depend on its batch-mates or on how it is cut into spans.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from umt import spectral
from umt.audio import Recording, mu_law_encode
from umt.encoding import ENCODE_WINDOW_SECONDS, array_reader, encode_long
from umt.errors import UserError
from umt.model import UMT
from umt.sampler import PackedDecoder, generate

RENDERERS = ("wavenet", "sines")  # sines: the excitation itself, a preview of a spectral decoder without its WaveNet
MAX_WARMUP_SHARE = 4  # warm-up frames are at most a quarter of a chunk (decoders whose receptive field is long)
STATE_BUDGET_BYTES = 2 << 30  # generation state the automatic batch size may use
MAX_AUTO_BATCH = 512
FLUTTER_BLOCK = 256  # frames of flutter drawn from one seed


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
class Span:
    """Conditioning frames first .. last - 1 of a recording, rendered together, and the latent
    frames lo .. hi - 1 their rendering reads."""

    first: int
    last: int
    lo: int
    hi: int


@dataclass
class Track:
    """One recording being rendered into one domain, a span at a time: what carries over
    from one span to the next."""

    key: str  # names the recording (e.g. its path): with the seed and the domain it seeds the randomness
    samples: int
    pending: np.ndarray | None = None  # the WaveNet's last frame so far, which the next span crossfades into


class Translator:
    """Translates mono audio (float32 numpy at the model rate, or a Recording) into the model's domains."""

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
        warmup = min(math.ceil(cfg.wavenet.receptive_field / cfg.pool), self.chunk_frames // MAX_WARMUP_SHARE)
        self.overlap = max(1, warmup) + 1
        # Two chunks sampled independently are uncorrelated where nothing locks their phase: a
        # WaveNet alone, or the residual beside an excitation. Those join with equal-power gains;
        # audio locked to the excitation (the same on both sides) joins linearly.
        self.equal_power = cfg.wavenet.residual or not cfg.spectral
        self.encode_frames = max(1, round(ENCODE_WINDOW_SECONDS * cfg.sample_rate / cfg.latent_hop))
        renderers = {d: model.decoders[d].renderer if cfg.spectral else model.decoders[d] for d in cfg.domains}
        self.packed = {d: PackedDecoder(r, cfg.pool, dtype) for d, r in renderers.items()}
        # By default as many chunks in parallel as 2 GiB of generation state allows (the paper
        # decoder keeps 4 s of history per layer: 34 MB a row): 63 rows for `paper`, 512 for `small`.
        per_row = next(iter(self.packed.values())).state_bytes_per_row()
        self.batch_size = batch_size or max(1, min(MAX_AUTO_BATCH, STATE_BUDGET_BYTES // per_row))
        self.span_frames = self.batch_size * self.chunk_frames  # a long recording's span fills one batch
        with torch.no_grad():  # the conditioning of silence: the context before a recording starts
            self.silence = (
                torch.zeros(cfg.spectrum.bins, device=device) if cfg.spectral  # every level at the floor
                else model.encode(mu_law_encode(torch.zeros(1, cfg.pool, device=device)))[0, 0]
            )  # fmt: skip

    @property
    def domains(self) -> list[str]:
        return self.model.cfg.domains

    def encode(self, audio: np.ndarray | Recording, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Latent frames lo .. hi - 1 [hi - lo, C] of a recording (default: all of its
        latent_frames); with `tokens`, the latent its tokens stand for."""
        latent = self.continuous(audio, lo, hi)
        if not self.tokens:
            return latent
        with torch.no_grad():
            return self.model.quantize(latent[None])[0][0]

    def continuous(self, audio: np.ndarray | Recording, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """The encoder's latent frames lo .. hi - 1 [F, C] of a recording (see encode)."""
        if isinstance(audio, Recording):
            read, samples = audio.read, audio.samples
        else:
            if audio.dtype.kind != "f":  # int16 PCM (a manifest's storage) would be clipped to full scale
                raise TypeError(f"audio must be float samples in [-1, 1], not {audio.dtype}")
            read, samples = array_reader(audio), audio.size
        self._check_length(samples)
        return encode_long(self.model, read, -(-samples // self.pool) * self.pool, self.encode_frames, lo, hi)

    def _check_length(self, samples: int) -> None:
        if samples < self.pool:
            raise UserError(f"too short ({samples} samples; one latent frame is {self.pool})")

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
        if self.model.cfg.encoder.input != "spectrum":
            frames = torch.cat([frames, frames[-1:]])
        return frames

    def levels(self, audio: np.ndarray) -> torch.Tensor:
        """The spectrum levels [len // pool + 1, bins] of real audio, comparable with `spectrum`."""
        with torch.no_grad():
            return spectral.level(self.model.spectrum(torch.from_numpy(audio).to(self.device)[None])[0])[0]

    def latent_frames(self, samples: int) -> int:
        """Latent frames of a recording of `samples` samples: ceil(samples / pool) (the last one
        zero-padded); over the spectrum one more, the frame centred on the end, in latent frames
        of latent_stride spectrum frames."""
        cfg, frames = self.model.cfg, -(-samples // self.pool)
        return -(-(frames + 1) // cfg.latent_stride) if cfg.encoder.input == "spectrum" else frames

    def spans(self, samples: int) -> list[Span]:
        """The spans a recording of `samples` samples is rendered in, in order."""
        self._check_length(samples)
        cfg = self.model.cfg
        frames, latent = -(-samples // self.pool), self.latent_frames(samples)
        spans = []
        for first in range(0, frames, self.span_frames):
            last = min(frames, first + self.span_frames)
            if cfg.spectral:  # levels first - overlap .. last, from the latent around them
                s = cfg.latent_stride
                margin = math.ceil(cfg.frames.receptive_field / 2 / s) + 1
                lo, hi = (first - self.overlap) // s - margin, -(-(last + 1) // s) + margin
            else:  # the latent is the conditioning
                lo, hi = first - self.overlap, last
            spans.append(Span(first, last, max(lo, 0), min(hi, latent)))
        return spans

    def decode(
        self,
        latents: list[torch.Tensor],
        lengths: list[int],
        domain: str,
        keys: list[str],
        progress: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]:
        """Render each whole latent [F_i, C] in `domain`; returns audio trimmed to lengths[i].

        keys name the recordings (e.g. their paths): with the seed and the domain they seed
        each chunk's sampling, so a file's output does not depend on its batch-mates."""
        tracks = [Track(key, n) for key, n in zip(keys, lengths)]
        spans = [self.spans(n) for n in lengths]
        parts: list[list[np.ndarray]] = [[] for _ in tracks]
        for r in range(max(map(len, spans), default=0)):
            now = [i for i in range(len(tracks)) if r < len(spans[i])]
            rendered = self.render(
                [tracks[i] for i in now], [spans[i][r] for i in now],
                [latents[i][spans[i][r].lo : spans[i][r].hi] for i in now], domain, progress,
            )  # fmt: skip
            for i, audio in zip(now, rendered):
                parts[i].append(audio)
        return [np.concatenate(p) for p in parts]

    def render(
        self,
        tracks: list[Track],
        spans: list[Span],
        latents: list[torch.Tensor],
        domain: str,
        progress: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]:
        """Render the next span of each track in `domain` from its latent frames span.lo ..
        span.hi - 1; returns each track's next samples (a track's spans rendered in order,
        concatenated, are its whole translation)."""
        if domain not in self.packed:
            raise UserError(f"unknown domain {domain!r}; the model has {', '.join(self.domains)}")
        # Chunks no longer than the longest recording: short inputs are not padded to a full chunk.
        c = min(self.chunk_frames, max(-(-t.samples // self.pool) for t in tracks))
        k, p = self.overlap, self.pool
        ends = [s.last + -(s.last - s.first) % c for s in spans]  # rounded up to whole chunks
        inputs = [self._conditioning(t, s, e, lat, domain) for t, s, e, lat in zip(tracks, spans, ends, latents)]
        if self.renderer == "sines":
            return [
                self._hand_out(t, s.first, e, None, osc, progress)
                for t, s, e, (_, osc) in zip(tracks, spans, ends, inputs)
            ]
        chunks = [(i, j) for i, (s, e) in enumerate(zip(spans, ends)) for j in range(s.first // c, e // c)]
        out = [
            np.zeros((e - s.first + 1) * p, dtype=np.float32) for s, e in zip(spans, ends)
        ]  # frames first - 1 .. end - 1
        for start in range(0, len(chunks), self.batch_size):
            batch = chunks[start : start + self.batch_size]
            cond = torch.stack(
                [inputs[i][0][j * c - spans[i].first : j * c - spans[i].first + c + k] for i, j in batch]
            )
            excitation = None
            if inputs[0][1] is not None:
                excitation = torch.stack([inputs[i][1].window(j * c - k, j * c + c) for i, j in batch])
            seeds = [_chunk_seed(self.seed, domain, tracks[i].key, j) for i, j in batch]
            real = sum(min(c * p, max(0, tracks[i].samples - j * c * p)) for i, j in batch)  # what progress counts
            counted = None if progress is None else _Scaled(progress, real / (len(batch) * (c + k) * p))
            codes = generate(self.packed[domain], cond, self.sampling[domain].temperature, seeds, self.streams,
                             counted, excitation)  # fmt: skip
            audio = (
                self.packed[domain].output.decode(codes).cpu().numpy()
            )  # what the WaveNet plays: the audio, or the residual
            for (i, j), row in zip(batch, audio):
                self._stitch(out[i], row, (j * c - spans[i].first) * p)
        return [self._hand_out(t, s.first, e, o, osc) for t, s, e, o, (_, osc) in zip(tracks, spans, ends, out, inputs)]

    def _conditioning(self, track: Track, span: Span, end: int, latent: torch.Tensor, domain: str
                      ) -> tuple[torch.Tensor, spectral.Oscillators | None]:  # fmt: skip
        """What the domain's WaveNet renders frames span.first .. end - 1 from, warm-up frames
        first: conditioning [end - first + overlap, C'] (silence outside the recording) and, for
        a spectral decoder, the oscillators that synthesise its excitation beside it.

        A spectral decoder's frame network predicts the spectrum levels (with spectrum_flutter,
        the domain's Sampling.flutter times their predicted flutter is drawn onto them); their
        peaks, with phases running freely from a start seeded by (seed, domain, key), make the
        excitation."""
        cfg = self.model.cfg
        frames = -(-track.samples // self.pool)
        a, b = span.first - self.overlap, end + 1  # levels of frames a .. b - 1: the conditioning and one more
        if not cfg.spectral:
            cond = self.silence.expand(b - 1 - a, -1).clone()
            lo, hi = max(a, span.lo), min(b - 1, span.hi)
            cond[lo - a : hi - a] = latent[lo - span.lo : hi - span.lo]
            return cond, None
        with torch.no_grad():
            levels, scale = self.model.decoders[domain].spectrum_and_flutter(latent[None])
            at = span.lo * cfg.latent_stride  # the frame levels[0] stands for
            whole = [levels[0].float()] + ([] if scale is None else [scale[0]])
            if cfg.encoder.input != "spectrum" and span.hi == self.latent_frames(track.samples):
                whole = [self._frame_per_sample(x) for x in whole]
            lo, hi = max(a, at), min(b, frames + 1, at + whole[0].shape[0])
            window = [x.new_zeros(b - a, x.shape[1]) for x in whole]
            for w, x in zip(window, whole):
                w[lo - a : hi - a] = x[lo - at : hi - at]
            levels = window[0]
            amount = self.sampling[domain].flutter
            if scale is not None and amount > 0:
                levels = spectral.add_flutter(levels, window[1], amount, self._flutter_draw(domain, track.key, a, b))
            amp = spectral.peaks(spectral.amplitude(levels))
            generator = torch.Generator().manual_seed(_chunk_seed(self.seed, domain, track.key, -1))
            oscillators = spectral.Oscillators(amp, self.model.freqs, cfg.pool, cfg.sample_rate, generator, offset=a)
            cond = levels[:-1].clone()
            cond[max(0, frames - a) :] = 0.0  # the frame centred on the end sounds only in the excitation
        return cond, oscillators

    def _flutter_draw(self, domain: str, key: str, first: int, last: int) -> torch.Tensor:
        """The flutter draws (spectral.flutter_draw) of frames first .. last - 1, a block of
        FLUTTER_BLOCK frames from each seed, so that they do not depend on the spans."""
        bins = self.model.cfg.spectrum.bins
        blocks = range(first // FLUTTER_BLOCK, -(-last // FLUTTER_BLOCK))
        draws = [spectral.flutter_draw(FLUTTER_BLOCK, bins, torch.Generator().manual_seed(
            _chunk_seed(self.seed, domain, key, f"flutter {block}"))) for block in blocks]  # fmt: skip
        at = blocks.start * FLUTTER_BLOCK
        return torch.cat(draws)[first - at : last - at].to(self.device)

    def _hand_out(self, track: Track, first: int, end: int, rendered: np.ndarray | None,
                  oscillators: spectral.Oscillators | None, progress: Callable[[int], None] | None = None) -> np.ndarray:  # fmt: skip
        """A span's samples for the track: the WaveNet's `rendered` frames first - 1 .. end - 1
        joined with the previous span's last frame, this span's last frame held back unless
        it is the recording's last (with render_residual, the excitation added), or the
        excitation alone (the sines renderer: rendered None); trimmed to the recording."""
        p = self.pool
        final = end * p >= track.samples
        if rendered is None:
            start, stop = first, end
            with torch.no_grad():
                audio = oscillators.summed(start, stop).clamp(-1.0, 1.0).cpu().numpy()
            if progress is not None:
                progress(min(stop * p, track.samples) - start * p)
        else:
            if track.pending is not None:
                rendered[:p] += track.pending * self._fades()[1]
            start, stop = max(first - 1, 0), end if final else end - 1
            track.pending = None if final else rendered[-p:].copy()
            audio = rendered[(start - first + 1) * p : (stop - first + 1) * p]
            if (
                self.model.cfg.wavenet.residual
            ):  # the excitation runs unbroken over the whole recording: added after the joins
                with torch.no_grad():
                    audio = self.model.waveform(torch.from_numpy(audio), oscillators.summed(start, stop).cpu()).numpy()
        return audio[: max(0, track.samples - start * p)]

    def _fades(self) -> tuple[np.ndarray, np.ndarray]:
        """Gains (fade in, fade out) over the frame where one chunk hands over to the next."""
        ramp = (np.arange(self.pool, dtype=np.float32) + 0.5) / self.pool
        if self.equal_power:
            return np.sin(ramp * np.pi / 2), np.cos(ramp * np.pi / 2)
        return ramp, 1 - ramp

    def _stitch(self, out: np.ndarray, chunk: np.ndarray, fade_at: int) -> None:
        """Write a chunk whose crossfade frame starts at sample `fade_at` of out: its warm-up
        frames are dropped, the crossfade frame joins what the previous chunk left there, the
        rest is copied."""
        p, k = self.pool, self.overlap
        fade_in, fade_out = self._fades()
        join = slice(fade_at, fade_at + p)
        out[join] = out[join] * fade_out + chunk[(k - 1) * p : k * p] * fade_in
        out[fade_at + p : fade_at + p + chunk.size - k * p] = chunk[k * p :]


class _Scaled:
    """A progress callback that passes on `share` of each count, one report at a time (the
    WaveNet's streams report from their own threads)."""

    def __init__(self, progress: Callable[[int], None], share: float):
        self.progress, self.share, self.total, self.passed = progress, share, 0.0, 0
        self.lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self.lock:
            self.total += n * self.share
            step, self.passed = int(self.total) - self.passed, int(self.total)
            self.progress(step)


def _chunk_seed(seed: int, domain: str, key: str, index: int | str) -> int:
    return zlib.crc32(f"{seed}\0{domain}\0{key}\0{index}".encode())

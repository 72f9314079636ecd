"""Translation of whole recordings: windowed encoding, chunked parallel decoding, stitching.

A recording of any length is
  1. encoded once, in overlapping windows wide enough for the encoder's receptive field, so
     the latent equals a whole-file encoding while memory stays bounded;
  2. cut into chunks of latent frames that are decoded side by side as one batch (chunks of
     several files share a batch). Each chunk starts OVERLAP_FRAMES early: the first frame
     warms the decoder up and is dropped, the second is crossfaded (equal power) with the end
     of the previous chunk, so chunks join without clicks or resets;
  3. trimmed back to the input's exact length.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from umt.audio import mu_law_decode, mu_law_encode
from umt.errors import UserError
from umt.generate import PackedDecoder, generate
from umt.model import UMT

OVERLAP_FRAMES = 2  # warm-up frame + crossfade frame at the start of every chunk
ENCODE_WINDOW_SECONDS = 10.0
STATE_BUDGET_BYTES = 2 << 30  # generation state the automatic batch size may use
MAX_AUTO_BATCH = 512


def encode_long(model: UMT, audio: torch.Tensor, window_frames: int) -> torch.Tensor:
    """Latent [F, C] of mono audio [N] (N a multiple of pool), computed in windows of
    `window_frames` frames plus a margin of context on each side that covers the
    encoder's receptive field; equal to encoding the whole file at once."""
    pool = model.cfg.pool
    frames = audio.shape[0] // pool
    margin = math.ceil(model.cfg.encoder_receptive_field / 2 / pool)
    codes = mu_law_encode(audio)
    parts = []
    with torch.no_grad():
        for first in range(0, frames, window_frames):
            last = min(frames, first + window_frames)
            lo, hi = max(0, first - margin), min(frames, last + margin)
            latent = model.encode(codes[lo * pool : hi * pool].unsqueeze(0))[0]
            parts.append(latent[first - lo : last - lo])
    return torch.cat(parts)


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
        chunk_seconds: float = 1.0,
        temperature: float = 1.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        streams: int | None = None,
    ):
        cfg = model.cfg
        self.model = model.to(device).eval()
        self.device, self.temperature, self.seed, self.streams = device, temperature, seed, streams
        self.pool = cfg.pool
        self.chunk_frames = max(1, round(chunk_seconds * cfg.sample_rate / cfg.pool))
        self.encode_frames = max(1, round(ENCODE_WINDOW_SECONDS * cfg.sample_rate / cfg.pool))
        self.packed = {d: PackedDecoder(model.decoders[d], cfg.pool, dtype) for d in cfg.domains}
        # By default as many chunks in parallel as 2 GiB of generation state allows (the paper
        # decoder keeps 4 s of history per layer: 34 MB a row): 63 rows for `paper`, 512 for `small`.
        per_row = next(iter(self.packed.values())).state_bytes_per_row()
        self.batch_size = batch_size or max(1, min(MAX_AUTO_BATCH, STATE_BUDGET_BYTES // per_row))
        with torch.no_grad():  # the latent of silence: the context before a recording starts
            self.silence = model.encode(mu_law_encode(torch.zeros(1, cfg.pool, device=device)))[0, 0]

    @property
    def domains(self) -> list[str]:
        return self.model.cfg.domains

    def encode(self, audio: np.ndarray) -> torch.Tensor:
        """Latent [F, C] of a recording, F = ceil(len / pool) (the last frame zero-padded)."""
        if audio.size < self.pool:
            raise UserError(f"too short ({audio.size} samples; one latent frame is {self.pool})")
        frames = math.ceil(audio.size / self.pool)
        padded = torch.zeros(frames * self.pool, device=self.device)
        padded[: audio.size] = torch.from_numpy(audio).to(self.device)
        return encode_long(self.model, padded, self.encode_frames)

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
        # Chunks no longer than the longest recording: short inputs are not padded to a full chunk.
        c = min(self.chunk_frames, max(latent.shape[0] for latent in latents))
        k, p = OVERLAP_FRAMES, self.pool
        padded = [self._pad(latent, c) for latent in latents]
        chunks = [
            Chunk(item, j, j * c) for item, lat in enumerate(padded) for j in range((lat.shape[0] - k) // c)
        ]
        outputs = [np.zeros(lat.shape[0] * p, dtype=np.float32) for lat in padded]
        for start in range(0, len(chunks), self.batch_size):
            batch = chunks[start : start + self.batch_size]
            latent = torch.stack([padded[ch.item][ch.first_frame : ch.first_frame + c + k] for ch in batch])
            seeds = [_chunk_seed(self.seed, domain, keys[ch.item], ch.index) for ch in batch]
            codes = generate(self.packed[domain], latent, self.temperature, seeds, self.streams, progress)
            audio = mu_law_decode(codes).cpu().numpy()
            for ch, row in zip(batch, audio):
                self._stitch(outputs[ch.item], row, ch.first_frame * p)
        return [out[k * p : k * p + n] for out, n in zip(outputs, lengths)]

    def _pad(self, latent: torch.Tensor, chunk: int) -> torch.Tensor:
        """OVERLAP_FRAMES of silence before (the first chunk's warm-up), silence after up to a
        whole number of chunks."""
        tail = -latent.shape[0] % chunk
        return torch.cat([self.silence.expand(OVERLAP_FRAMES, -1), latent, self.silence.expand(tail, -1)])

    def _stitch(self, out: np.ndarray, chunk: np.ndarray, at: int) -> None:
        """Write a chunk that starts at sample `at`: its warm-up frame is dropped, its second
        frame crossfades with what the previous chunk left there, the rest is copied."""
        p = self.pool
        fade_at = at + p
        join = slice(fade_at, fade_at + p)
        ramp = (np.arange(p, dtype=np.float32) + 0.5) / p * (np.pi / 2)
        out[join] = out[join] * np.cos(ramp) + chunk[p : 2 * p] * np.sin(ramp)
        out[fade_at + p : at + chunk.size] = chunk[2 * p :]


def _chunk_seed(seed: int, domain: str, key: str, index: int) -> int:
    return zlib.crc32(f"{seed}\0{domain}\0{key}\0{index}".encode())

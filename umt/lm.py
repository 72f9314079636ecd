"""A token language model over the tokenizer's frames: a small causal transformer (GPT-style,
pre-norm) that continues music as tokens any domain's decoder can render.

A frame holds K tokens, one per codebook. Two ways to model them (Lemercier et al., 2024):
  parallel: one step per frame; the K codebooks are predicted at once by K heads, i.e. as a
            product of per-codebook marginals, with the delay pattern of MusicGen: the step
            that predicts codebook 0 of frame t predicts codebook k of frame t - k, so every
            codebook is conditioned on the lower codebooks of its own frame. Exact only if the
            codebooks predicted in one step are independent given the past: what the MMD loss
            of umt.quantization.mmd pushes towards.
  joint:    K steps per frame, the codes of a frame one after another: exact, K times as many
            steps.
The attention heads' outputs pass through a module of their own (`Attention.heads`), so
probes can read them and steering can add to them with forward hooks (SMITIN).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from umt.errors import UserError

MODES = ("parallel", "joint")
LM_KIND = "umt-lm"  # the kind of an LM checkpoint


@dataclass
class LMConfig:
    codebooks: int
    codebook_size: int
    mode: str = "parallel"
    layers: int = 4
    heads: int = 4
    dim: int = 128
    context: int = 256  # frames the model sees

    def check(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"--mode {self.mode}: choose parallel or joint")
        if min(self.layers, self.heads, self.dim, self.context, self.codebooks) < 1 or self.dim % self.heads:
            raise UserError(f"LM sizes {asdict(self)}: need positive sizes and dim a multiple of heads")

    @property
    def positions(self) -> int:
        """Sequence positions of a full context: one per frame, or one per token (joint)."""
        return self.context * (self.codebooks if self.mode == "joint" else 1)


class Attention(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.n_heads = cfg.heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.heads = nn.Identity()  # [B, T, heads, head_dim]: each head's output, for probes and steering
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in self.qkv(x).split(c, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
        return self.proj(self.heads(y).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attention = Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, 4 * cfg.dim), nn.GELU(), nn.Linear(4 * cfg.dim, cfg.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TokenLM(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        k, n = cfg.codebooks, cfg.codebook_size
        self.embed = nn.Embedding(k * n, cfg.dim)  # codebook j's code c is token j * n + c
        self.position = nn.Embedding(cfg.positions, cfg.dim)
        self.blocks = nn.Sequential(*(Block(cfg) for _ in range(cfg.layers)))
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, k * n)  # K heads of n logits
        self.register_buffer("offsets", torch.arange(k) * n, persistent=False)

    # ------------------------------------------------------------ sequences

    def margin(self) -> int:
        """Frames a training window needs beyond the frames it predicts (see sequences)."""
        return self.cfg.codebooks if self.cfg.mode == "parallel" else 1

    def sequences(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Codes [B, T + margin, K] -> (inputs [B, L], targets [B, L], codebook of each target [L]).

        parallel: row s of the delayed grid holds codebook k of frame s - k; rows K-1 .. T+K-1 are
            complete, and each row's tokens are predicted from the rows before. L = T rows, each
            an input of K tokens (summed embeddings) and a target of K.
        joint: the frames' tokens in a row; the last T frames' T * K tokens are predicted, each
            from the one before it.
        """
        b, frames, k = codes.shape
        if self.cfg.mode == "parallel":
            rows = torch.stack([codes[:, k - 1 - j : frames - j, j] for j in range(k)], dim=-1)  # [B, T + 1, K]
            return rows[:, :-1], rows[:, 1:], torch.arange(k, device=codes.device)
        flat = codes.reshape(b, frames * k)
        return flat[:, k - 1 : -1], flat[:, k:], torch.arange(k, device=codes.device).repeat(frames - 1)

    # ------------------------------------------------------------ the network

    def forward(self, inputs: torch.Tensor, codebook_of_input: torch.Tensor | None = None) -> torch.Tensor:
        """inputs [B, L, K] (parallel) or [B, L] (joint, with codebook_of_input [L]) -> logits
        [B, L, K, n] (parallel: the next row's K codebooks) or [B, L, n] (joint: the next token)."""
        cfg = self.cfg
        if cfg.mode == "parallel":
            x = self.embed(inputs + self.offsets).sum(dim=2)
        else:
            x = self.embed(inputs + self.offsets[codebook_of_input])
        x = x + self.position(torch.arange(inputs.shape[1], device=inputs.device))
        logits = self.out(self.norm(self.blocks(x))).unflatten(-1, (cfg.codebooks, cfg.codebook_size))
        if cfg.mode == "parallel":
            return logits
        following = (codebook_of_input + 1) % cfg.codebooks  # the codebook of the token predicted
        return logits.gather(2, following.view(1, -1, 1, 1).expand(logits.shape[0], -1, 1, cfg.codebook_size))[:, :, 0]

    def loss(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per frame (nats; all K codebooks) of windows
        codes [B, T + margin, K]."""
        inputs, targets, codebook = self.sequences(codes)
        if self.cfg.mode == "parallel":
            logits = self(inputs)
        else:
            logits = self(inputs, (codebook - 1) % self.cfg.codebooks)
        nll = F.cross_entropy(logits.float().flatten(0, -2), targets.flatten())
        return nll * self.cfg.codebooks  # a frame is K tokens

    # ------------------------------------------------------------ generation

    @torch.no_grad()
    def continuation(
        self, prompt: torch.Tensor, frames: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Sample `frames` frames [frames, K] that follow prompt [P, K] (P >= margin frames;
        only the last `context` frames are seen)."""
        cfg = self.cfg
        k = cfg.codebooks
        if prompt.shape[0] < self.margin():
            raise UserError(f"the prompt is too short: {prompt.shape[0]} frames, the LM needs {self.margin()}")
        p = prompt.shape[0]
        codes = torch.cat([prompt, prompt.new_zeros(frames + k, k)])  # room for the delayed tail
        if cfg.mode == "parallel":
            # row s (codebook j of frame s - j) is predicted from rows < s; rows before P are the prompt's
            for s in range(p, p + frames + k - 1):
                rows = torch.stack([codes[k - 1 - j : s - j, j] for j in range(k)], dim=-1)[-cfg.context :]
                logits = self(rows[None])[0, -1]  # [K, n]
                sampled = _sample(logits, temperature, generator)
                for j in range(k):
                    if p <= s - j < p + frames:
                        codes[s - j, j] = sampled[j]
        else:
            flat = codes.view(-1)
            position = torch.arange(flat.numel(), device=flat.device) % k
            for i in range(p * k, (p + frames) * k):
                # the window starts, as in training, with the last token of a frame
                lo = max(0, i - cfg.positions)
                lo += (k - 1 - lo) % k
                logits = self(flat[None, lo:i], position[lo:i])[0, -1]
                flat[i] = _sample(logits[None], temperature, generator)[0]
        return codes[p : p + frames]


def _sample(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """One code per row of logits [R, n]: the most likely at temperature 0."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)

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

Generation keeps each layer's keys and values (`KVCache`): a step runs the network on the one
new position only. Positions are learned embeddings of the place in the window, so once the
window is full the cache is rebuilt from the newest three quarters of it (`continuation`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
    dropout: float = 0.0  # of the embeddings, attention weights and each block's outputs, in training

    def check(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"--mode {self.mode}: choose parallel or joint")
        if min(self.layers, self.heads, self.dim, self.context, self.codebooks) < 1 or self.dim % self.heads:
            raise UserError(f"LM sizes {asdict(self)}: need positive sizes and dim a multiple of heads")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout {self.dropout}: choose a rate in [0, 1)")

    @property
    def positions(self) -> int:
        """Sequence positions of a full context: one per frame, or one per token (joint)."""
        return self.context * (self.codebooks if self.mode == "joint" else 1)


@dataclass
class KVCache:
    """The keys and values [B, heads, positions, head_dim] of every layer for the positions a
    generation has run so far, so that a step computes only its new position."""

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)

    def held(self, layer: int = 0) -> int:
        """Positions a layer holds (between calls every layer holds as many: the next position's
        place in the window)."""
        return self.keys[layer].shape[2] if layer < len(self.keys) else 0

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append a layer's new keys and values; return all it holds for that layer."""
        if layer == len(self.keys):
            self.keys.append(k)
            self.values.append(v)
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.values[layer]


class Attention(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.n_heads, self.dropout = cfg.heads, cfg.dropout
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.heads = nn.Identity()  # [B, T, heads, head_dim]: each head's output, for probes and steering
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in self.qkv(x).split(c, dim=-1))
        past = cache.held(layer) if cache is not None else 0
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        p = self.dropout if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        else:  # new position i (of t) sees the past and the new positions up to itself
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.proj(self.heads(y.transpose(1, 2)).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attention = Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, 4 * cfg.dim), nn.GELU(), nn.Linear(4 * cfg.dim, cfg.dim))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.drop(self.attention(self.norm1(x), cache, layer))
        return x + self.drop(self.mlp(self.norm2(x)))


class TokenLM(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        k, n = cfg.codebooks, cfg.codebook_size
        self.embed = nn.Embedding(k * n, cfg.dim)  # codebook j's code c is token j * n + c
        self.position = nn.Embedding(cfg.positions, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
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

    def forward(
        self, inputs: torch.Tensor, codebook_of_input: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> torch.Tensor:
        """inputs [B, L, K] (parallel) or [B, L] (joint, with codebook_of_input [L]) -> logits
        [B, L, K, n] (parallel: the next row's K codebooks) or [B, L, n] (joint: the next token).
        With a cache, the inputs follow the positions it holds (and are added to it)."""
        cfg = self.cfg
        if cfg.mode == "parallel":
            x = self.embed(inputs + self.offsets).sum(dim=2)
        else:
            x = self.embed(inputs + self.offsets[codebook_of_input])
        start = cache.held() if cache is not None else 0
        if start + inputs.shape[1] > cfg.positions:
            raise ValueError(f"{start + inputs.shape[1]} positions: the LM's window holds {cfg.positions}")
        x = self.drop(x + self.position(torch.arange(start, start + inputs.shape[1], device=inputs.device)))
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        logits = self.out(self.norm(x)).unflatten(-1, (cfg.codebooks, cfg.codebook_size))
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
        self,
        prompt: torch.Tensor,
        frames: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        cache: bool = True,
    ) -> torch.Tensor:
        """Sample `frames` frames [frames, K] that follow prompt [P, K] (P >= margin frames;
        only the last `context` frames are seen). cache=False runs the whole window at every
        step, as before the cache (bench/token_lm.py times both)."""
        cfg = self.cfg
        k = cfg.codebooks
        if prompt.shape[0] < self.margin():
            raise UserError(f"the prompt is too short: {prompt.shape[0]} frames, the LM needs {self.margin()}")
        p = prompt.shape[0]
        codes = torch.cat([prompt, prompt.new_zeros(frames + k, k)])  # room for the delayed tail
        if cfg.mode == "parallel":
            # row s (codebook j of frame s - j; s >= K - 1) is predicted from the rows before it;
            # rows before P are the prompt's
            def rows(lo: int, hi: int) -> tuple[torch.Tensor, None]:
                return torch.stack([codes[lo - j : hi - j, j] for j in range(k)], dim=-1)[None], None

            window = _Window(self, rows, first=k - 1, cache=cache)
            for s in range(p, p + frames + k - 1):
                sampled = _sample(window.logits(s), temperature, generator)  # [K]
                for j in range(k):
                    if p <= s - j < p + frames:
                        codes[s - j, j] = sampled[j]
        else:
            flat = codes.view(-1)
            codebook = torch.arange(flat.numel(), device=flat.device) % k

            def tokens(lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
                return flat[None, lo:hi], codebook[lo:hi]

            # the window starts, as in training, with the last token of a frame
            window = _Window(self, tokens, first=k - 1, cache=cache, step=k)
            for i in range(p * k, (p + frames) * k):
                flat[i] = _sample(window.logits(i)[None], temperature, generator)[0]
        return codes[p : p + frames]


class _Window:
    """What a generation step sees: items [lo, end) of its sequence (rows of the delayed grid,
    or tokens), the last `positions` of them. With the cache, a step runs only the items added
    since the one before; once the window would overflow, it restarts at the newest three
    quarters of it (positions are places in the window, so cached keys cannot slide)."""

    def __init__(self, lm: TokenLM, items, first: int, cache: bool, step: int = 1):
        self.lm, self.items, self.first, self.use_cache, self.step = lm, items, first, cache, step
        self.cache: KVCache | None = None
        self.lo = self.hi = 0

    def start(self, end: int, keep: int) -> int:
        """The window's first item: at least `first`, in step with it, at most `keep` before end."""
        lo = max(self.first, end - keep)
        return lo + (self.first - lo) % self.step

    def logits(self, end: int) -> torch.Tensor:
        """The logits that follow item end - 1."""
        positions = self.lm.cfg.positions
        if not self.use_cache:
            return self.lm(*self.items(self.start(end, positions), end))[0, -1]
        if self.cache is None or end - self.lo > positions:
            self.lo = self.start(end, positions if self.cache is None else positions * 3 // 4)
            self.cache, self.hi = KVCache(), self.lo
        inputs = self.items(self.hi, end)
        self.hi = end
        return self.lm(*inputs, cache=self.cache)[0, -1]


def _sample(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """One code per row of logits [R, n]: the most likely at temperature 0."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)

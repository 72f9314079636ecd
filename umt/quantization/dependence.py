"""How dependent a tokenizer's codebooks are, measured on tokens: mutual information between
every pair of codebooks from co-occurrence counts, and each codebook's usage (perplexity).

The plug-in estimate of mutual information from counts is biased upwards (N tokens over a
table of n_a x n_b cells always show some co-occurrence structure). It gets the Miller-Madow
correction (each entropy plus (occupied cells - 1) / 2N nats), and a floor: the same estimate
after one stream of the pair is permuted over all frames, which leaves both marginals and
destroys the dependence, so whatever it still reports is estimation bias.
"""

from __future__ import annotations

import math

import torch


def entropy_bits(counts: torch.Tensor) -> float:
    """Miller-Madow corrected entropy (bits) of a histogram (any shape)."""
    counts = counts.flatten().double()
    n = counts.sum()
    p = counts[counts > 0] / n
    plug_in = -(p * p.log()).sum().item()
    return (plug_in + (p.numel() - 1) / (2 * n.item())) / math.log(2)


def mutual_information(a: torch.Tensor, b: torch.Tensor, size: int) -> float:
    """I(A; B) in bits from paired tokens a, b [N] (values < size): H(A) + H(B) - H(A, B)."""
    joint = torch.bincount(a.long() * size + b.long(), minlength=size * size)
    return (
        entropy_bits(torch.bincount(a.long(), minlength=size))
        + entropy_bits(torch.bincount(b.long(), minlength=size))
        - entropy_bits(joint)
    )


def perplexity(tokens: torch.Tensor, size: int) -> float:
    """2 ** H: how many codes a codebook uses, in effect (size if all equally often)."""
    return 2 ** entropy_bits(torch.bincount(tokens.long(), minlength=size))


def codebook_dependence(codes: torch.Tensor, size: int, seed: int = 0) -> dict:
    """codes [N, K] (N frames) -> {"mi": K x K bits, "floor": K x K bits (one stream permuted),
    "mean_mi", "mean_floor" (over the pairs), "perplexity": per codebook}."""
    n, k = codes.shape
    generator = torch.Generator().manual_seed(seed)
    mi = [[0.0] * k for _ in range(k)]
    floor = [[0.0] * k for _ in range(k)]
    pairs = []
    for i in range(k):
        for j in range(i + 1, k):
            mi[i][j] = mi[j][i] = mutual_information(codes[:, i], codes[:, j], size)
            shuffled = codes[torch.randperm(n, generator=generator), j]
            floor[i][j] = floor[j][i] = mutual_information(codes[:, i], shuffled, size)
            pairs.append((i, j))
    return {
        "frames": n,
        "mi": mi,
        "floor": floor,
        "mean_mi": sum(mi[i][j] for i, j in pairs) / max(1, len(pairs)),
        "mean_floor": sum(floor[i][j] for i, j in pairs) / max(1, len(pairs)),
        "perplexity": [perplexity(codes[:, i], size) for i in range(k)],
    }


def aligned(streams: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """Streams [K, B, T, ...] -> [K, B, T - max(delays), ...], stream k taken delays[k] frames
    earlier than stream 0: side by side at each position, what a delayed-parallel LM predicts
    in one step (codebook k of frame t - delays[k] beside codebook 0 of frame t)."""
    k, t = streams.shape[0], streams.shape[2]
    if len(delays) != k or min(delays) < 0 or max(delays) >= t:
        raise ValueError(f"delays {delays}: one per stream, each in 0..{t - 1}")
    span, latest = t - max(delays), max(delays)
    return torch.stack([streams[i, :, latest - delays[i] : latest - delays[i] + span] for i in range(k)])

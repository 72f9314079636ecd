"""An independence loss between the codebooks of a residual quantiser (Lemercier et al., ICML 2024).

A token language model that predicts the K codebooks of a frame in one step models their joint
distribution as the product of its marginals; that is exact only if the codebooks are
independent. The maximum mean discrepancy between
  - the joint sample: each position's K streams side by side, and
  - a sample of the product of the marginals: the same K streams, each shuffled on its own over
    all positions (batch x time), which keeps every marginal and breaks every dependence,
is a differentiable proxy for their dependence: zero in expectation when the codebooks are
independent, positive otherwise. Minimised with the model's loss, it pushes the codebooks
towards independence.

As the paper's code runs it (audiocraft, commit 2e4660d: losses/mmd.py, solvers/compression.py):
the streams are the residuals left after each quantiser layer; every feature is standardised
over the positions; the kernel is a sum of Gaussians exp(-d^2 / 2a) over fixed variances a
(BANDWIDTHS) of the squared distance d^2 between standardised joint vectors; the positions are
a macro-batch of many training batches (umt.training.step). Here the estimate is the unbiased
one, normalised by the number of positions N. (The source divides by the number of items B of
the macro-batch instead, so its value is about (N / B)^2 = T^2 times this one, T the frames of
an item, plus a small term that pushes the points apart; its weight 1000 at T = 50 frames is
a weight of about 2.5e6 on this estimate.)
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from umt.quantization.dependence import aligned

BANDWIDTHS = (0.1, 1.0, 5.0, 10.0, 20.0, 50.0)  # kernel variances on standardised features (the source's)
BLOCK = 2048  # rows of the kernel matrices computed at once (the whole N x N never sits in memory)


def independence_mmd(
    streams: torch.Tensor,
    delays: list[int] | None = None,
    max_points: int = 4096,
    bandwidths: tuple[float, ...] = BANDWIDTHS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """MMD^2 between the joint distribution of K streams and the product of their marginals.

    streams: [K, B, T, D], stream k what codebook k leaves or contributes at each position.
    delays: per stream, how many frames earlier its vector is taken: a delayed-parallel LM
        predicts codebook k of frame t - delays[k] in the same step as codebook 0 of frame t,
        and the dependence that matters is between the vectors predicted in one step.
    max_points: positions drawn at random when there are more (the cost is quadratic in them).
    """
    k, _, _, d = streams.shape
    if delays is not None:
        streams = aligned(streams, delays)
    points = streams.float().flatten(1, 2)  # [K, N, D]
    n = points.shape[1]
    if n > max_points:
        points = points[:, torch.randperm(n, generator=generator, device="cpu")[:max_points].to(points.device)]
        n = max_points
    if n < 2:
        raise ValueError("need at least two positions")
    points = (points - points.mean(dim=1, keepdim=True)) / (points.var(dim=1, keepdim=True) + 1e-8).sqrt()
    joint = points.transpose(0, 1).reshape(n, k * d)
    shuffled = torch.stack(
        [points[i, torch.randperm(n, generator=generator, device="cpu").to(points.device)] for i in range(k)]
    )
    product = shuffled.transpose(0, 1).reshape(n, k * d)
    a = torch.tensor(bandwidths, device=joint.device)
    # each kernel matrix's diagonal is len(bandwidths) (d = 0): left out of the unbiased sums
    within = (_kernel_sum(joint, joint, a) + _kernel_sum(product, product, a) - 2 * n * len(bandwidths)) / (n * (n - 1))
    return within - 2 * _kernel_sum(joint, product, a) / (n * n)


def _kernel_sum(x: torch.Tensor, y: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """Sum over all pairs (i, j) of sum_a exp(-|x_i - y_j|^2 / 2a), a block of rows at a time,
    each recomputed in backward rather than kept."""
    total = x.new_zeros(())
    for start in range(0, x.shape[0], BLOCK):
        rows = x[start : start + BLOCK]
        if rows.requires_grad or y.requires_grad:
            total = total + checkpoint(_block_sum, rows, y, variances, use_reentrant=False)
        else:
            total = total + _block_sum(rows, y, variances)
    return total


def _block_sum(rows: torch.Tensor, y: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    # squared distances as one matrix product (cdist's backward is slow on CPU)
    squared = (rows.pow(2).sum(-1, keepdim=True) + y.pow(2).sum(-1) - 2 * rows @ y.T).clamp_min(0)
    return sum(torch.exp(squared / (-2 * a)).sum() for a in variances)

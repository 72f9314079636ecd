"""An independence loss between the codebooks of a residual quantiser (Lemercier et al., ICML 2024).

A token language model that predicts the K codebooks of a frame in one step models their joint
distribution as the product of its marginals; that is exact only if the codebooks are
independent. The maximum mean discrepancy between
  - the joint sample: each position's K codebook vectors side by side, and
  - a sample of the product of the marginals: the same K streams, each shuffled on its own over
    all positions (batch x time), which keeps every marginal and breaks every dependence,
is a differentiable proxy for their dependence: zero in expectation when the codebooks are
independent, positive otherwise. Minimised with the model's loss, it pushes the codebooks
towards independence.

The kernel is a sum of Gaussians over several bandwidths, scaled to the median distance
between the joint sample's points (so the loss does not depend on the latent's scale); the
estimate is the unbiased one (no self-similarity terms).
"""

from __future__ import annotations

import torch

BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)  # multiples of the median pairwise distance


def independence_mmd(
    streams: torch.Tensor,
    delays: list[int] | None = None,
    max_points: int = 1024,
    bandwidths: tuple[float, ...] = BANDWIDTHS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """MMD^2 between the joint distribution of K streams and the product of their marginals.

    streams: [K, B, T, D], stream k the vectors codebook k contributes at each position.
    delays: per stream, how many frames earlier its vector is taken: a delayed-parallel LM
        predicts codebook k of frame t - delays[k] in the same step as codebook 0 of frame t,
        and the dependence that matters is between the vectors predicted in one step.
    max_points: positions drawn at random (the cost is quadratic in their number).
    """
    k, _, t, d = streams.shape
    if delays is not None:
        if len(delays) != k or min(delays) < 0 or max(delays) >= t:
            raise ValueError(f"delays {delays}: one per stream, each in 0..{t - 1}")
        span = t - max(delays)
        streams = torch.stack(
            [streams[i, :, max(delays) - delays[i] : max(delays) - delays[i] + span] for i in range(k)]
        )
    points = streams.flatten(1, 2)  # [K, N, D]
    n = points.shape[1]
    if n > max_points:
        points = points[:, torch.randperm(n, generator=generator, device="cpu")[:max_points].to(points.device)]
        n = max_points
    if n < 2:
        raise ValueError("need at least two positions")
    joint = points.transpose(0, 1).reshape(n, k * d)
    shuffled = torch.stack(
        [points[i, torch.randperm(n, generator=generator, device="cpu").to(points.device)] for i in range(k)]
    )
    product = shuffled.transpose(0, 1).reshape(n, k * d)

    dxx, dyy, dxy = (_squared_distances(a, c) for a, c in ((joint, joint), (product, product), (joint, product)))
    scale = dxx.detach()[~torch.eye(n, dtype=torch.bool, device=dxx.device)].median().clamp_min(1e-12)

    def kernel(sq: torch.Tensor) -> torch.Tensor:
        return sum(torch.exp(-sq / (2 * w * w * scale)) for w in bandwidths)

    off = 1 - torch.eye(n, device=joint.device, dtype=joint.dtype)
    pairs = n * (n - 1)
    return (kernel(dxx) * off).sum() / pairs + (kernel(dyy) * off).sum() / pairs - 2 * kernel(dxy).mean()


def _squared_distances(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """[N, M] squared Euclidean distances, as one matrix product (cdist's backward is slow on CPU)."""
    return (a.pow(2).sum(-1, keepdim=True) + c.pow(2).sum(-1) - 2 * a @ c.T).clamp_min(0)

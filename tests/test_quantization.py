"""The codebook independence loss (umt.quantization.mmd)."""

import torch

from umt.quantization.mmd import independence_mmd


def pair(dependence: float, n: int = 1200, seed: int = 0) -> torch.Tensor:
    """Two streams of 2-d vectors: the second is dependence * the first plus independent noise."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(1, n, 2, generator=g)
    b = dependence * a + torch.randn(1, n, 2, generator=g)
    return torch.stack([a, b])  # [K=2, B=1, T=n, D=2]


def test_near_zero_for_independent_streams_and_clearly_positive_for_dependent_ones():
    g = torch.Generator().manual_seed(1)
    independent = [independence_mmd(pair(0.0, seed=s), generator=g).item() for s in range(3)]
    dependent = independence_mmd(pair(2.0), generator=g).item()
    assert max(abs(v) for v in independent) < 0.01
    assert dependent > 0.05 and dependent > 10 * max(abs(v) for v in independent)
    # the loss does not depend on the scale of the latent
    scaled = independence_mmd(100 * pair(1.0), generator=torch.Generator().manual_seed(1)).item()
    assert abs(scaled - independence_mmd(pair(1.0), generator=torch.Generator().manual_seed(1)).item()) < 1e-4


def test_its_gradient_makes_a_toy_pair_of_streams_less_dependent():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1, 600, 2, generator=g)
    noise = torch.randn(1, 600, 2, generator=g)
    mix = torch.tensor(1.5, requires_grad=True)  # b = mix * a + noise: dependent while mix != 0
    optimizer = torch.optim.SGD([mix], lr=2.0)
    for _ in range(60):
        loss = independence_mmd(torch.stack([a, mix * a + noise]), generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert abs(mix.item()) < 0.5


def test_delays_pair_each_stream_with_the_frame_a_delayed_lm_predicts_beside_it():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1, 1, 800, 2, generator=g)
    b = torch.roll(a, -1, dims=2) + 0.1 * torch.randn(1, 1, 800, 2, generator=g)  # b[t - 1] follows a[t]
    streams = torch.cat([a, b])
    assert independence_mmd(streams, generator=g).item() < 0.01  # frame by frame: unrelated
    assert independence_mmd(streams, delays=[0, 1], generator=g).item() > 0.05  # a[t] beside b[t - 1]

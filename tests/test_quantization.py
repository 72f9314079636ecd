"""The codebook independence loss (umt.quantization.mmd)."""

import pytest
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


def test_zero_for_independent_streams_positive_for_copies_at_the_sources_bandwidths():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(1, 4, 300, 3, generator=g)  # [K=1, B, T, D]
    independent = independence_mmd(torch.cat([a, torch.randn(1, 4, 300, 3, generator=g)]), generator=g).item()
    copies = independence_mmd(torch.cat([a, a]), generator=g).item()
    assert abs(independent) < 0.01 and copies > 0.05 and copies > 10 * abs(independent)
    # features are standardised: a copy at another scale is as dependent
    scaled = independence_mmd(torch.cat([a, 50 * a]), generator=g).item()
    assert abs(scaled - copies) < 0.02


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


# ---------------------------------------------------------------- the tokenizer and the dependence measures

from umt.quantization.dependence import codebook_dependence, mutual_information, perplexity
from umt.quantization.tokenizer import Tokenizer


@pytest.mark.parametrize("layers", [0, 2])
def test_tokenizer_codes_decode_to_the_quantised_latent_and_streams_reach_the_input(layers: int):
    torch.manual_seed(0)
    tokenizer = Tokenizer(8, codebooks=3, codebook_size=16, layers=layers)
    latent = torch.randn(2, 40, 8, requires_grad=True)
    with torch.no_grad():  # a fresh tokenizer passes the latent on as it is, whatever its depth
        assert torch.equal(tokenizer.from_quantiser(tokenizer.to_quantiser(latent)), latent)
    out = tokenizer(latent)  # training mode: k-means initialises the codebooks
    assert out.codes.shape == (2, 40, 3) and int(out.codes.max()) < 16 and out.penalty.ndim == 0
    assert torch.equal(out.source, latent.detach())  # what a macro-batch of the independence loss keeps
    # the streams of a macro-batch leave the codebooks as they were
    before = {k: v.clone() for k, v in tokenizer.state_dict().items()}
    streams = tokenizer.streams(latent)
    assert streams.shape == (3, 2, 40, 8)
    assert tokenizer.training and all(torch.equal(v, before[k]) for k, v in tokenizer.state_dict().items())
    streams[2].sum().backward()  # the residuals move with the input
    assert latent.grad.abs().sum() > 0
    tokenizer.eval()
    with torch.no_grad():
        again = tokenizer(latent)
        assert torch.allclose(tokenizer.decode(again.codes), again.latent, atol=1e-5)
        # the last residual is what the quantiser misses: the input less its quantisation
        x = tokenizer.to_quantiser(latent)
        assert torch.allclose(tokenizer.from_quantiser(x - streams[-1]), again.latent, atol=1e-5)
        # more codebooks, closer to the input: each residual smaller than the one before
        norms = streams.norm(dim=-1).mean(dim=(1, 2))
        assert (norms.diff() < 0).all()


def test_mutual_information_of_known_pairs():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 32, (2, 20000), generator=g)
    copy_with_one_bit_lost = (a // 2) * 2  # I(a; copy) = 5 - 1 = 4 bits
    figures = codebook_dependence(torch.stack([a, b, copy_with_one_bit_lost], dim=1), 32)
    assert abs(figures["mi"][0][2] - 4.0) < 0.01
    assert figures["mi"][0][1] < 0.02 and figures["floor"][0][2] < 0.02  # independent, and the permuted floor
    assert abs(mutual_information(a, b, 32)) < 0.02
    assert abs(perplexity(a, 32) - 32) < 0.5 and abs(perplexity(copy_with_one_bit_lost, 32) - 16) < 0.5

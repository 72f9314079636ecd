"""SMITIN steering: probes on activations, intervention through forward hooks, self-monitoring."""

import pytest
import torch

from umt.errors import UserError
from umt.lm import LMConfig, TokenLM
from umt.steering import Probe, Steering, collect, fit_probes, lm_sites, model_sites

K, N = 2, 16


def examples(trait: bool, count: int, generator: torch.Generator) -> torch.Tensor:
    """Token windows whose codes come from the upper half of each codebook (the trait) or the lower."""
    low = N // 2 if trait else 0
    return torch.randint(low, low + N // 2, (count, 12 + K, K), generator=generator)


@pytest.fixture(scope="module")
def lm_and_probes():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    lm = TokenLM(LMConfig(K, N, "parallel", layers=2, heads=2, dim=16, context=12)).eval()
    sites = lm_sites(lm)
    with_trait = collect(sites, lambda: lm.loss(examples(True, 40, g)))
    without = collect(sites, lambda: lm.loss(examples(False, 40, g)))
    return lm, sites, fit_probes(with_trait, without), g


def test_a_probe_finds_a_separable_trait(lm_and_probes):
    lm, sites, probes, _ = lm_and_probes
    assert [s.name for s in sites] == ["lm.0.0", "lm.0.1", "lm.1.0", "lm.1.1"]
    assert len(probes) == 4 and probes[0].accuracy >= 0.95
    assert probes[0].spread > 0 and abs(float(probes[0].direction.norm()) - 1) < 1e-5
    again = Probe.from_dict(probes[0].to_dict())
    assert torch.equal(again.weight, probes[0].weight) and again.accuracy == probes[0].accuracy


def test_steering_moves_the_probes_reading(lm_and_probes):
    lm, sites, probes, g = lm_and_probes
    best = probes[0]
    site = next(s for s in sites if s.name == best.site)
    plain = examples(False, 16, g)

    def reading(alpha: float) -> float:
        with Steering(sites, [best], alpha).applied():
            seen = collect([site], lambda: lm.loss(plain))[site.name]
        return float(best.read(seen).mean())

    assert reading(0.0) < 0.5 < reading(4.0)
    assert reading(-4.0) < reading(0.0)
    # the nudge reaches the layers after the site: the LM's predictions change
    with torch.no_grad():
        before = lm.loss(plain)
        with Steering(sites, [best], 4.0).applied():
            after = lm.loss(plain)
    assert not torch.isclose(before, after)


def test_monitoring_stops_the_nudge_once_the_trait_is_read(lm_and_probes):
    lm, sites, probes, g = lm_and_probes
    best = probes[0]
    with_trait = examples(True, 8, g)
    steering = Steering(sites, [best], alpha=4.0, threshold=0.5, patience=2)
    with torch.no_grad(), steering.applied():
        lm.loss(with_trait)
        assert steering.active  # one reading is not yet enough
        lm.loss(with_trait)
        assert not steering.active and steering.stopped_at == 2 and min(steering.readings) >= 0.5
        stopped = lm.loss(with_trait)
    assert torch.isclose(stopped, lm.loss(with_trait))  # no nudge any more
    # without the trait the readings stay low and the nudge goes on
    unmonitored = Steering(sites, [best], alpha=0.0, threshold=0.5, patience=2)
    with torch.no_grad(), unmonitored.applied():
        for _ in range(3):
            lm.loss(examples(False, 8, g))
    assert unmonitored.active and max(unmonitored.readings) < 0.5


def test_sites_of_a_translation_model_and_probes_of_other_sites(tiny_spectral_checkpoint, lm_and_probes):
    from umt.checkpoint import load_model

    model = load_model(tiny_spectral_checkpoint)
    names = [s.name for s in model_sites(model, "low")]
    assert names[0] == "latent" and names[1] == "frames.low.0" and len(names) == 1 + len(model.decoders["low"].frames.layers)
    _, _, probes, _ = lm_and_probes
    with pytest.raises(UserError, match="not in this model"):
        Steering(model_sites(model, "low"), probes[:1], 1.0)

"""SMITIN steering: probes on activations, intervention through forward hooks, self-monitoring."""

import contextlib

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
    _, sites, probes, _ = lm_and_probes
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


def test_readings_are_taken_on_the_trailing_window():
    torch.manual_seed(1)
    probe = Probe("x", torch.randn(3), 0.2, 1.0, 1.0, window=4)
    activations = torch.randn(2, 9, 3)
    running = probe.read_running(activations)
    for t in range(9):
        expected = probe.read(activations[:, max(0, t - 3) : t + 1].mean(dim=1))
        assert torch.allclose(running[:, t], expected, atol=1e-5)
    whole = Probe("x", probe.weight, 0.2, 1.0, 1.0).read_running(activations)  # no window: everything so far
    assert torch.allclose(whole[:, -1], probe.read(activations.mean(dim=1)), atol=1e-5)


def test_the_gate_pauses_after_patience_readings_and_resumes(lm_and_probes):
    _, sites, probes, _ = lm_and_probes
    steering = Steering(sites, probes[:1], 1.0, threshold=0.9, patience=2)
    readings = torch.tensor([[0.95, 0.95, 0.95, 0.2, 0.95, 0.95, 0.95]])
    assert steering.gate(readings).tolist() == [[1, 1, 0, 0, 1, 1, 0]]
    assert Steering(sites, probes[:1], 1.0).gate(readings).tolist() == [[1] * 7]  # no threshold: never pauses


def test_monitoring_pauses_the_nudge_where_the_trait_is_read(lm_and_probes):
    lm, sites, probes, g = lm_and_probes
    best = probes[0]
    site = next(s for s in sites if s.name == best.site)
    nudge = 4.0 * best.spread * best.direction

    def seen(tokens: torch.Tensor, steering: Steering | None) -> torch.Tensor:
        with steering.applied() if steering else contextlib.nullcontext():
            return torch.stack(collect_steps(site, lambda: lm.loss(tokens)))

    with_trait = examples(True, 8, g)
    plain = seen(with_trait, None)
    monitored = Steering(sites, [best], alpha=4.0, threshold=0.5, patience=2)
    steered = seen(with_trait, monitored)
    _, readings, nudged = monitored.log[0]
    # the site's own activations move by exactly the nudge, where (and only where) it applied
    # (the log holds the share of the batch nudged at each step, so compare batch means)
    assert torch.allclose((steered - plain)[0].mean(dim=0), nudged[:, None] * nudge, atol=1e-4)
    assert nudged[:2].tolist() == [1.0, 1.0] and nudged[-1] == 0.0 and readings.min() >= 0.5
    assert monitored.nudged_share() < 1.0 and monitored.newest_nudged() == 0.0
    # without the trait the readings stay low and the nudge goes on (almost) everywhere
    unmonitored = Steering(sites, [best], alpha=0.0, threshold=0.5, patience=2)
    seen(examples(False, 8, g), unmonitored)
    assert unmonitored.nudged_share() > 0.8 and float(unmonitored.log[0][1].mean()) < 0.5


def test_the_first_steered_site_of_a_call_monitors_it_before_any_nudge(lm_and_probes):
    lm, sites, probes, g = lm_and_probes
    first, later = (next(p for p in probes if p.site.startswith(f"lm.{layer}.")) for layer in (0, 1))
    tokens = examples(True, 8, g)
    plain = Steering(sites, [first], 0.0, threshold=0.5, patience=2)
    with torch.no_grad(), plain.applied():
        lm.loss(tokens)
    both = Steering(sites, [later, first], 4.0, threshold=0.5, patience=2)  # order of the list does not matter
    with torch.no_grad(), both.applied():
        lm.loss(tokens)
        lm.loss(tokens)  # a second call monitors afresh
    assert [name for name, _, _ in both.log] == [first.site, later.site] * 2
    (_, read_first, gate_first), (_, _, gate_later) = both.log[:2]
    assert torch.allclose(read_first, plain.log[0][1])  # the monitor read the unsteered activations
    assert torch.equal(gate_first, gate_later) and torch.equal(gate_first, plain.log[0][2])  # one gate for the call
    assert torch.equal(both.log[2][2], gate_first)


def collect_steps(site, run) -> list[torch.Tensor]:
    """The site's activations [B, T, D] at each call of run()."""
    out: list[torch.Tensor] = []
    handle = site.module.register_forward_hook(
        lambda module, args, output: out.append(site.select(output).detach().clone())
    )
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    return out


def test_sites_of_a_translation_model_and_probes_of_other_sites(tiny_spectral_checkpoint, lm_and_probes):
    from umt.checkpoint import load_model

    model = load_model(tiny_spectral_checkpoint)
    names = [s.name for s in model_sites(model, "low")]
    assert (
        names[0] == "latent"
        and names[1] == "frames.low.0"
        and len(names) == 1 + len(model.decoders["low"].frames.layers)
    )
    _, _, probes, _ = lm_and_probes
    with pytest.raises(UserError, match="not in this model"):
        Steering(model_sites(model, "low"), probes[:1], 1.0)

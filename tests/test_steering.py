"""SMITIN steering: probes on activations, weighted intervention through forward hooks, self-monitoring."""

import pytest
import torch

from umt.errors import UserError
from umt.lm import LMConfig, TokenLM
from umt.steering import (
    Group,
    Probe,
    Steering,
    collect,
    fit_probes,
    frame_sites,
    lm_sites,
    model_sites,
    site_weights,
    stop_threshold,
)

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
    steps: dict[str, int] = {}
    with_trait = collect(sites, lambda: lm.loss(examples(True, 40, g)), steps)
    without = collect(sites, lambda: lm.loss(examples(False, 40, g)), steps)
    return lm, sites, fit_probes(with_trait, without, windows=steps), g


def test_a_probe_finds_a_separable_trait_at_the_last_step(lm_and_probes):
    _, sites, probes, _ = lm_and_probes
    assert [s.name for s in sites] == ["lm.0.0", "lm.0.1", "lm.1.0", "lm.1.1"]
    assert len(probes) == 4 and probes[0].accuracy >= 0.95 and all(p.window == 1 for p in probes)
    assert probes[0].spread > 0 and abs(float(probes[0].direction.norm()) - 1) < 1e-5
    again = Probe.from_dict(probes[0].to_dict())
    assert torch.equal(again.weight, probes[0].weight) and again.accuracy == probes[0].accuracy


def test_weights_and_threshold_come_from_the_probes_accuracies():
    probes = [Probe(f"s{i}", torch.ones(2), 0.0, 1.0, a) for i, a in enumerate([1.0, 0.9, 0.75, 0.5, 0.4])]
    # above chance, relative to the best, cubed: (1, 0.8, 0.5, 0, 0) ** 3
    assert site_weights(probes) == pytest.approx([1.0, 0.512, 0.125, 0.0, 0.0])
    accuracies = torch.tensor([1.0, 0.9, 0.75, 0.5, 0.4], dtype=torch.float64)
    assert stop_threshold(probes) == pytest.approx(0.75 - float(accuracies.std(unbiased=False)))


def test_the_gain_is_one_less_the_reading_and_stops_at_the_threshold(lm_and_probes):
    _, sites, probes, _ = lm_and_probes
    group = Group.of([(next(s for s in sites if s.name == p.site), p) for p in probes], 1.0)
    group.threshold = 0.9
    confidence = torch.tensor([[0.1, 0.5, 0.8, 0.9, 0.95]])
    assert group.gain(confidence, monitored=True)[0].tolist() == pytest.approx([0.9, 0.5, 0.2, 0.0, 0.0])
    assert group.gain(confidence, monitored=False).tolist() == [[1.0] * 5]  # ITI: full strength throughout
    assert [p.site for p in group.monitors] == [p.site for p in probes]  # the best (up to 16) monitor
    # an LM probe of averaged activations reads another thing than SMITIN's newest step
    averaged = Probe(probes[0].site, probes[0].weight, 0.0, 1.0, 1.0, window=0)
    with pytest.raises(UserError, match="train the probes again"):
        Group.of([(sites[0], averaged)], 1.0)


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


def generated(lm, sites, site, steering: Steering | None, prompt: torch.Tensor) -> list[torch.Tensor]:
    """The site's newest-step activations [B, D] at each call of a greedy continuation (as the
    layers after it see them: steered if steering)."""
    seen: list[torch.Tensor] = []
    context = steering.applied() if steering else None
    if context:
        context.__enter__()
    handle = site.module.register_forward_hook(lambda m, a, out: seen.append(site.select(out)[:, -1].clone()))
    try:
        lm.continuation(prompt, 6, temperature=0.0)
    finally:
        handle.remove()
        if context:
            context.__exit__(None, None, None)
    return seen


def test_generation_is_nudged_at_the_newest_step_along_the_weighted_direction(lm_and_probes):
    lm, sites, probes, g = lm_and_probes
    best = probes[0]
    site = next(s for s in sites if s.name == best.site)
    prompt = examples(False, 1, g)[0]
    plain = generated(lm, sites, site, None, prompt)
    steering = Steering.towards(sites, [best], 4.0, monitored=False)
    steered = generated(lm, sites, site, steering, prompt)
    nudge = 4.0 * best.spread * best.direction  # the best probe's weight is 1
    assert torch.allclose(steered[0], plain[0])  # the prompt's call is read, not nudged
    assert torch.allclose(steered[1] - plain[1], nudge[None], atol=1e-4)  # the first step: exactly the nudge
    assert steering.nudged_share() == 1.0 and steering.mean_gain() == 1.0 and len(steering.log) == len(plain) - 1
    assert float(best.read(torch.cat(steered[1:])).mean()) > float(best.read(torch.cat(plain[1:])).mean())


def test_monitoring_scales_the_nudge_by_one_less_the_reading_and_stops_it(lm_and_probes):
    lm, sites, probes, g = lm_and_probes
    prompt = examples(False, 1, g)[0]
    steering = Steering.towards(sites, probes, 2.0, monitored=True)
    steering.groups[0].threshold = 1.01  # never reached: the gain is 1 - C at every step
    generated(lm, sites, sites[0], steering, prompt)
    for _, gain, confidence in steering.log:
        assert torch.allclose(gain, 1 - confidence)
    stopped = Steering.towards(sites, probes, 2.0, monitored=True)
    stopped.groups[0].threshold = 0.0  # reached at once: no step is nudged
    plain = generated(lm, sites, sites[0], None, prompt)
    assert all(torch.equal(a, b) for a, b in zip(generated(lm, sites, sites[0], stopped, prompt), plain))
    assert stopped.nudged_share() == 0.0 and stopped.log


def test_translation_is_monitored_by_a_pass_without_nudges(tiny_spectral_checkpoint):
    from umt.checkpoint import load_model

    torch.manual_seed(0)
    model = load_model(tiny_spectral_checkpoint).eval()
    decoder = model.decoders["low"]
    sites = frame_sites(model, "low")
    latent = torch.randn(1, 30, model.cfg.latent_channels)
    width = decoder.frames_in.out_features
    probes = [Probe(s.name, torch.randn(width), 0.0, 1.0, 0.6 + 0.1 * i, window=5) for i, s in enumerate(sites)]
    with torch.no_grad():
        plain = decoder.spectrum(latent)
        monitored = Steering.towards(sites, probes, 3.0, monitored=True)
        with monitored.applied():
            decoder.spectrum(latent[:, :20])  # an earlier span, shorter
            monitored.log.clear()
            steered = decoder.spectrum(latent)
        reading = {}  # what the first pass read: every site unsteered
        for site, probe in zip(sites, probes):
            handle = site.module.register_forward_hook(
                lambda m, a, out, p=probe: reading.update({p.site: p.read_running(out)})
            )
            decoder.spectrum(latent)
            handle.remove()
    group = monitored.groups[0]
    expected_c = torch.stack([reading[p.site] for p in group.monitors]).median(dim=0).values
    [(_, gain, confidence)] = monitored.log
    assert torch.allclose(confidence, expected_c[0], atol=1e-5)
    assert torch.allclose(gain, group.gain(expected_c, True)[0], atol=1e-5)
    assert not torch.allclose(steered, plain)
    unmonitored = Steering.towards(sites, probes, 3.0, monitored=False)
    with torch.no_grad(), unmonitored.applied():
        decoder.spectrum(latent)
        decoder.spectrum(latent[:, :20])  # a recording in spans of other lengths
    assert unmonitored.nudged_share() == 1.0 and unmonitored.mean_gain() == 1.0 and len(unmonitored.log) == 2


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
        Steering.towards(model_sites(model, "low"), probes[:1], 1.0)

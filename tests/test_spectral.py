"""The spectral recipe: semitone spectrum, excitation, frame networks, excited renderer, staged training."""

import math

import numpy as np
import pytest
import torch

from umt import losses, spectral
from umt.data import spectra
from umt.model import UMT
from umt.outputs import LogisticMixture
from umt.outputs import shift_right as shift_targets
from umt.presets import preset
from umt.sampler import MixtureSampler, PackedDecoder, Stream, generate
from umt.validation import validate

SR, HOP = 16000, 160


@pytest.fixture(scope="module")
def spectrum() -> spectral.SemitoneSpectrum:
    return spectral.SemitoneSpectrum(SR, HOP, 36, 72)


def test_a_sinusoid_reads_its_amplitude_and_phase_in_its_own_bin(spectrum):
    freqs = spectral.bin_frequencies(36, 72)
    k, a, phi = 33, 0.4, 0.7  # A3 (220 Hz)
    n = torch.arange(SR, dtype=torch.float64)
    x = (a * torch.cos(2 * math.pi * freqs[k] * n / SR + phi)).float()
    amp, phase = spectrum(x[None])
    assert amp.shape == (1, SR // HOP + 1, 72)
    f = 50  # mid-signal: frame f is centred on sample f * HOP
    assert amp[0, f, k].item() == pytest.approx(a, rel=0.01)
    expected = (2 * math.pi * freqs[k].item() * f * HOP / SR + phi) % (2 * math.pi)
    assert math.cos(phase[0, f, k].item() - expected) > 0.999
    audible = spectral.peaks(amp)[0, f] > 0.01 * a
    assert audible.nonzero().flatten().tolist() == [k]  # the neighbours it leaks into (at -6 dB) are dropped
    assert (amp[0, f] > 0.01 * a).sum() >= 3


def test_free_running_excitation_is_a_steady_sinusoid():
    freqs = spectral.bin_frequencies(36, 72)
    amp = torch.zeros(1, 11, 72)
    amp[0, :, 30] = 0.5
    phase = spectral.free_phases(11, 1, freqs, HOP, SR, torch.Generator().manual_seed(0))
    out = spectral.excitation(amp, phase, freqs, HOP, SR)
    assert out.shape == (1, 10 * HOP, 6)
    assert out[0, :, [0, 1, 3, 4, 5]].abs().max() == 0  # bin 30 is in the third octave band
    wave = out[0, :, 2].double()
    n = torch.arange(wave.numel(), dtype=torch.float64)
    omega = 2 * math.pi * freqs[30] / SR
    fit = torch.linalg.lstsq(torch.stack([torch.cos(omega * n), torch.sin(omega * n)], 1), wave[:, None]).solution
    assert fit.norm().item() == pytest.approx(0.5, rel=1e-4)  # one sinusoid of amplitude 0.5, no seams at frame edges


def test_levels_round_trip_and_the_augmentation_moves_only_its_segment():
    amp = torch.tensor([0.0, 1e-5, 1e-3, 0.5, 1.0])
    assert torch.allclose(spectral.amplitude(spectral.level(amp))[2:], amp[2:], rtol=1e-4)
    assert spectral.level(amp)[0] == 0 and spectral.amplitude(torch.zeros(1)) == 0
    levels = torch.zeros(2, 10, 24)
    levels[:, :, 5] = 1.0
    out = spectral.shift_segment(levels, torch.tensor([2, 0]), torch.tensor([6, 10]), torch.tensor([1.0, -0.25]))
    assert torch.equal(out[0, :2], levels[0, :2]) and torch.equal(out[0, 6:], levels[0, 6:])
    assert out[0, 3].argmax() == 6 and out[0, 3, 6] == 1.0  # a whole semitone up
    assert out[1, 0, 4] == pytest.approx(0.25) and out[1, 0, 5] == pytest.approx(0.75)  # a quarter down


def test_the_timbre_augmentation_reshapes_the_input_envelope_and_keeps_silence_and_target():
    from umt.data.augment import random_envelope

    rng = np.random.default_rng(0)
    curves = [random_envelope(72, rng, 12.0) for _ in range(200)]
    peaks = np.array([np.abs(c).max() for c in curves])
    assert peaks.max() <= 12.0 + 1e-4 and peaks.mean() == pytest.approx(6.0, abs=1.0)  # U(0, 12) dB peaks
    assert np.abs(np.diff(curves[0])).max() < 2.0  # smooth over the bins: an envelope, not noise
    levels = torch.zeros(3, 72)
    levels[:, 10] = 0.5
    levels[:, 40] = 0.01
    gained = spectral.apply_gain(levels, torch.full((72,), -4.0))
    assert gained[0, 10] == pytest.approx(0.45)  # a level unit is 80 dB
    assert gained[0, 40] == 0 and gained[0, 0] == 0  # nothing below the floor; silence stays silent
    assert spectral.apply_gain(levels, torch.full((72,), 8.0))[0, 0] == 0

    store = spectra.SpectrumStore.__new__(spectra.SpectrumStore)  # two seconds of one tone, no files
    store.hop, store.entries, store.audio = HOP, [None], [np.zeros(2 * SR, dtype=np.int16)]
    store.amplitude = [torch.zeros(2 * SR // HOP + 1, 72).index_fill_(1, torch.tensor([30]), 0.3)]
    store.phase = [torch.zeros_like(store.amplitude[0])]
    plain = spectra.SpectralCrops(store, "a", 50, 0, seed=1)[0]
    timbre = spectra.SpectralCrops(store, "a", 50, 0, seed=1, timbre_db=12.0)[0]
    assert torch.equal(plain["levels"], timbre["levels"])  # the target stays clean
    assert not torch.equal(plain["levels_in"], timbre["levels_in"])
    assert (timbre["levels_in"][:, :20] == 0).all()  # far from the tone: still silence


def test_analysis_in_pieces_equals_one_transform(spectrum, monkeypatch):
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(3 * SR + 77) * 0.1).astype(np.float32)
    whole = spectrum(torch.from_numpy(np.pad(audio, (0, -audio.size % HOP)))[None])[0][0]
    monkeypatch.setattr(spectra, "ANALYSIS_SECONDS", 1)
    amp, _ = spectra.analyse(spectrum, audio)
    assert amp.shape == (audio.size // HOP + 1, 72)  # a frame per whole hop of audio, plus the end
    torch.testing.assert_close(amp, whole[: amp.shape[0]], atol=1e-4, rtol=1e-3)


def tiny_spectral(seed: int = 0, **overrides) -> UMT:
    torch.manual_seed(seed)
    return UMT(preset("tiny-spectral", ["a", "b"], **overrides))


OUTPUTS = [{}, {"mulaw_bits": 10}, {"sample_output": "logistic", "mixtures": 3}]


@pytest.mark.parametrize("output", OUTPUTS)
def test_incremental_generation_equals_the_excited_forward(output):
    model = tiny_spectral(**output)
    cfg, renderer = model.cfg, model.decoders["a"].renderer.eval()
    for p in renderer.parameters():
        p.data.mul_(2.0)
    levels = torch.rand(3, 4, cfg.spectrum.bins)
    excitation = torch.randn(3, 4 * cfg.pool, cfg.spectrum.bands)
    out = renderer.output
    samples = out.encode(torch.rand(3, 4 * cfg.pool) - 0.5)
    packed = PackedDecoder(renderer, cfg.pool)
    stream = Stream(packed)
    stream.start(*packed.conditioning(levels))
    previous = torch.full((3,), out.silence, dtype=out.dtype)
    with torch.no_grad():
        full = renderer(shift_targets(samples, out.silence), levels, excitation)
        for t in range(samples.shape[1]):
            torch.testing.assert_close(stream.step(previous, excitation[:, t]), full[:, t], rtol=0, atol=1e-4)
            previous = samples[:, t]
    greedy = generate(packed, levels, 0.0, excitation=excitation, streams=2)
    with torch.no_grad():
        params = renderer(shift_targets(greedy, out.silence), levels, excitation)
    if isinstance(out, LogisticMixture):  # the likeliest component's mean
        logits, means, _ = out.split(params)
        expected = means.gather(-1, logits.argmax(-1, keepdim=True)).squeeze(-1).clamp(-1, 1)
        torch.testing.assert_close(greedy, expected, rtol=0, atol=1e-5)
    else:
        assert torch.equal(params.argmax(-1), greedy)
    with pytest.raises(ValueError, match="excitation"):
        generate(packed, levels, 0.0)


def test_the_logistic_mixture_scores_16_bit_bins():
    out = LogisticMixture(2)
    targets = torch.tensor([[0.1, -0.3, 0.999999, -1.0]])

    def params(means, log_scale):
        return torch.stack([torch.tensor([0.0, -30.0]).expand(4, 2), torch.stack([means, means + 0.5], -1),
                            torch.full((4, 2), log_scale)], dim=-1).transpose(-1, -2).reshape(1, 4, 6)  # fmt: skip

    sharp = out.nll(params(targets[0], -20.0), targets)  # all the mass on the target's own bin
    broad = out.nll(params(targets[0], math.log(0.1)), targets)
    off = out.nll(params(targets[0] + 0.01, -20.0), targets)
    assert 0 <= sharp < 0.5 < broad < off
    # a broad logistic: the bin's mass is its density times its width
    expected = -(torch.log(torch.tensor(0.25 / 0.1)) + math.log(2 / (2**16 - 1)))
    one = torch.tensor([[[0.0, 0.0, math.log(0.1)]]])
    torch.testing.assert_close(LogisticMixture(1).nll(one, torch.zeros(1, 1)), expected, rtol=1e-3, atol=0)


def test_mixture_sampling_follows_the_logistic():
    torch.manual_seed(0)
    params = torch.tensor([[0.0, -30.0, 0.2, -0.5, math.log(0.01), math.log(0.01)]]).expand(4000, 6).contiguous()
    sampler = MixtureSampler(list(range(4000)), 1.0, torch.device("cpu"), 2)
    values = sampler.sample(params.clone(), torch.empty(4000))
    assert abs(values.mean().item() - 0.2) < 0.002  # the first component only
    assert values.std().item() == pytest.approx(0.01 * math.pi / math.sqrt(3), rel=0.1)
    cold = MixtureSampler(list(range(4000)), 0.0, torch.device("cpu"), 2).sample(params.clone(), torch.empty(4000))
    assert torch.all(cold == 0.2)


def spectral_batch(model: UMT, batch: int = 4, frames: int = 20, render: int = 5) -> dict[str, torch.Tensor]:
    """A [1, B, ...] batch of random audio for domain 'a', laid out as UMT.forward reads it."""
    torch.manual_seed(1)
    audio = torch.randn(batch, frames * HOP) * 0.2
    amp, phase = model.spectrum(audio)
    levels = spectral.level(amp[:, :frames])
    return {
        "levels_in": levels[None], "levels": levels[None],
        "audio": audio[:, : render * HOP].clamp(-1, 1)[None], "render_levels": levels[:, :render][None],
        "amplitude": amp[:, : render + 1][None], "phase": phase[:, : render + 1][None],
    }  # fmt: skip


def test_conditioning_gain_is_zero_for_decoders_that_ignore_their_conditioning():
    model = tiny_spectral()
    batch = spectral_batch(model)
    items = [{k: v[0, i] for k, v in batch.items()} for i in range(4)]
    scores = validate(model, None, {"a": items}, 4, 4)
    assert scores["gain/spectrum/a"] != 0 and scores["gain/ce/a"] != 0  # untrained, but listening
    decoder = model.decoders["a"]
    with torch.no_grad():
        decoder.frames_in.weight.zero_()  # the frame network no longer sees the latent
        decoder.renderer.condition.weight.zero_()  # nor the renderer its spectrum and excitation
        decoder.renderer.excite.weight.zero_()
    scores = validate(model, None, {"a": items}, 4, 4)
    assert scores["gain/spectrum/a"] == 0 and scores["gain/ce/a"] == 0


def test_the_spectrum_loss_falls_on_a_fixed_batch():
    model = tiny_spectral()
    batch = spectral_batch(model)
    del batch["audio"]  # frame networks only
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    seen = []
    for _ in range(60):
        loss = losses.terms(model(batch, ["a"]))["spectrum/a"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen.append(loss.item())
    assert seen[-1] < 0.5 * seen[0]


def test_flutter_is_the_movement_about_a_moving_average_and_is_drawn_back_bounded():
    steady = torch.full((1, 30, 4), 0.5)
    ramp = torch.linspace(0.2, 0.8, 30)[None, :, None].expand(1, 30, 4)
    assert spectral.flutter(steady).abs().max() < 1e-6
    assert spectral.flutter(ramp)[:, 2:-2].abs().max() < 1e-6  # a slow movement is no flutter
    alternating = 0.5 + 0.05 * (-1.0) ** torch.arange(30)[None, :, None].expand(1, 30, 4)
    assert spectral.flutter(alternating)[:, 2:-2].abs().mean() > 0.04

    levels = torch.rand(200, 48) * 0.8
    levels[:, :8] = 0.0  # silent bins stay silent
    scale = torch.full_like(levels, 0.02)
    draw = spectral.flutter_draw(200, 48, torch.Generator().manual_seed(0))
    assert torch.equal(draw, spectral.flutter_draw(200, 48, torch.Generator().manual_seed(0)))
    assert torch.equal(spectral.add_flutter(levels, scale, 0.0, draw), levels)
    drawn = spectral.add_flutter(levels, scale, 1.5, draw)
    moved = (drawn - levels)[:, 8:]
    assert torch.equal(drawn[:, :8], levels[:, :8]) and (drawn >= 0).all()
    assert moved.abs().max() <= spectral.FLUTTER_TAIL * 1.5 * 0.02 + 1e-6
    assert moved.abs().mean().item() == pytest.approx(1.5 * 0.02, rel=0.1)  # a Laplace draw's mean size is its scale


def test_the_flutter_head_learns_the_size_of_its_targets_flutter():
    model = tiny_spectral(spectrum_flutter=True)
    batch = spectral_batch(model)
    del batch["audio"]
    heads = [p for n, p in model.named_parameters() if ".flutter_out." in n]
    optimizer = torch.optim.Adam(heads, lr=3e-2)
    for _ in range(80):
        loss = losses.terms(model(batch, ["a"]))["flutter/a"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _, scale = model.decoders["a"].spectrum_and_flutter(model.latent(batch["levels_in"][0]), batch["levels"].shape[2])
    target = spectral.flutter(batch["levels"][0]).abs().mean().item()  # the maximum-likelihood Laplace scale
    assert scale.mean().item() == pytest.approx(target, rel=0.25)


def test_the_flutter_term_trains_its_head_and_leaves_the_trunk_to_the_levels():
    model = tiny_spectral(spectrum_flutter=True)
    batch = spectral_batch(model)
    del batch["audio"]
    losses.terms(model(batch, ["a"]))["flutter/a"].backward()
    grads = {n: p.grad for n, p in model.named_parameters() if n.startswith("decoders.a.")}
    assert grads["decoders.a.flutter_out.weight"].abs().sum() > 0
    assert all(g is None for n, g in grads.items() if ".flutter_out." not in n)


def test_flutter_heads_are_added_to_a_trained_model_alone_and_drawn_in_translation(
    two_domains, tiny_spectral_checkpoint, tmp_path
):
    from umt.checkpoint import load_checkpoint, load_model
    from umt.training.loop import train
    from umt.translator import Translator

    out = tmp_path / "flutter"
    options = dict(
        steps=2, val_every=2, val_items=2, render_batch_size=0, crop=1600, model_overrides={"spectrum_flutter": True}
    )
    train(two_domains, out, options, "cpu", base=tiny_spectral_checkpoint)
    before, after = load_checkpoint(tiny_spectral_checkpoint)["model"], load_checkpoint(out / "last.pt")
    assert after["train"]["flutter_only"] and all(torch.equal(before[k], after["model"][k]) for k in before)
    assert {k for k in after["model"] if k not in before} == {f"decoders.{d}.flutter_out.{p}" for d in ("low", "high")
                                                              for p in ("weight", "bias")}  # fmt: skip

    audio = (np.sin(np.arange(SR) / SR * 2 * np.pi * 220) * 0.5).astype(np.float32)
    base = Translator(load_model(tiny_spectral_checkpoint), torch.device("cpu"), renderer="sines")
    render = lambda translator: translator.decode([translator.encode(audio)], [audio.size], "high", ["x"])[0]
    fluttered = [
        Translator(load_model(out / "last.pt"), torch.device("cpu"), renderer="sines", flutter=f) for f in (0.0, 1.0)
    ]
    assert np.array_equal(render(fluttered[0]), render(base))  # no flutter: the median spectrum, as before
    drawn = render(fluttered[1])
    assert not np.array_equal(drawn, render(base)) and np.array_equal(drawn, render(fluttered[1]))  # seeded


def test_chroma_distance_ignores_octave_and_loudness_and_reads_only_sounding_frames():
    bins = 72
    amp = torch.zeros(1, 3, bins)
    amp[0, :2, [12, 16, 19]] = 0.5  # C, E, G major triad in the second octave; frame 2 silent
    same_notes = torch.zeros(1, 3, bins)
    same_notes[0, :2, [36, 40, 43]] = 0.05  # the same triad two octaves up, 20 dB softer
    same_notes[0, 2, 5] = 0.5  # whatever sounds where the reference is silent does not count
    other_notes = torch.zeros(1, 3, bins)
    other_notes[0, :2, [14, 18, 21]] = 0.5  # D major: no pitch class in common
    level = spectral.level
    assert spectral.chroma_distance(level(same_notes), level(amp)).item() == pytest.approx(0.0, abs=1e-4)
    assert spectral.chroma_distance(level(other_notes), level(amp)).item() == pytest.approx(1.0, abs=1e-3)
    assert spectral.chroma(level(amp))[0, 0, [0, 4, 7]].tolist() == pytest.approx([0.5, 0.5, 0.5], rel=1e-4)


def note_batch(model: UMT, domains: int = 2, batch: int = 3, frames: int = 20) -> dict[str, torch.Tensor]:
    """Frame-network batches [D, B, frames, bins] of chords: three random semitones a crop."""
    torch.manual_seed(2)
    t = torch.arange(frames * HOP) / SR
    notes = torch.randint(48, 84, (domains * batch, 3))
    audio = (0.2 * torch.sin(2 * math.pi * 440 * 2 ** ((notes[..., None] - 69) / 12) * t)).sum(1)
    levels = spectral.level(model.spectrum(audio)[0][:, :frames]).unflatten(0, (domains, batch))
    return {"levels_in": levels, "levels": levels}


def test_the_translation_chroma_trains_each_domain_to_keep_the_others_notes():
    model = tiny_spectral()
    batch = note_batch(model)
    terms = losses.terms(model(batch, ["a", "b"], translate=True))
    assert "translation_chroma" not in losses.terms(model(batch, ["a", "b"]))  # only when asked for
    terms["translation_chroma"].backward()
    for part in ("encoder.input", "decoders.a.frames_out", "decoders.b.frames_out"):  # a's crops go to b, b's to a
        assert model.get_parameter(part + ".weight").grad.abs().sum() > 0
    assert model.decoders["a"].renderer.embed.weight.grad is None  # the renderers play no part
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    distances = []
    for _ in range(40):
        distance = losses.terms(model(batch, ["a", "b"], translate=True))["translation_chroma"]
        optimizer.zero_grad()
        distance.backward()
        optimizer.step()
        distances.append(distance.item())
    assert distances[-1] < 0.5 * distances[0]
    items = [{k: v[0, i] for k, v in batch.items()} for i in range(3)]
    scores = validate(model, None, {"a": items}, 3, 3)  # a's crops through b's frame network
    assert scores["translation_chroma/a"] == pytest.approx(distances[-1], abs=0.05)
    assert scores["score"] == scores["spectrum"]  # a measure, not part of the validation score


def test_staged_spectral_training_runs_end_to_end_and_translates(two_domains, tmp_path):
    from umt.checkpoint import load_model
    from umt.errors import UserError
    from umt.training.loop import train
    from umt.translator import Translator

    out = tmp_path / "run"
    common = {"preset": "tiny-spectral", "val_every": 3, "val_items": 2, "checkpoint_every": 3, "workers": 0}
    with pytest.raises(UserError, match="--loss-weight translation_chroma=-1"):
        train(two_domains, out, {**common, "steps": 3, "loss_weights": {"translation_chroma": -1.0}})
    with pytest.raises(UserError, match="--loss-weight chroma=1.0: no such loss term"):
        train(two_domains, out, {**common, "steps": 3, "loss_weights": {"chroma": 1.0}})
    run = train(
        two_domains, out, {**common, "steps": 3, "render_batch_size": 0, "loss_weights": {"translation_chroma": 1.0}}
    )  # frame networks first
    frames_only = {k: v.clone() for k, v in run.model.state_dict().items()}
    run = train(two_domains, out, {"steps": 6, "batch_size": 0, "render_batch_size": 2}, resume=True)  # then renderers
    after = run.model.state_dict()
    assert run.step == 6
    assert torch.equal(after["encoder.input.weight"], frames_only["encoder.input.weight"])  # frozen by batch size 0
    assert not torch.equal(
        after["decoders.low.renderer.embed.weight"], frames_only["decoders.low.renderer.embed.weight"]
    )
    model = load_model(out / "last.pt")
    translator = Translator(model, torch.device("cpu"), chunk_seconds=0.25)
    audio = np.sin(np.arange(SR) / SR * 2 * np.pi * 220).astype(np.float32) * 0.5
    rendered = translator.decode([translator.encode(audio)], [audio.size], "high", ["x"])[0]
    assert rendered.shape == audio.shape and np.isfinite(rendered).all()


def test_training_and_inference_excitations_have_the_level_of_the_audio(spectrum):
    """The renderer trains on the peaks with the target's phases and renders the peaks with free
    phases: both must be as loud as the audio (all bins would sum leaking neighbours in phase)."""
    freqs = spectral.bin_frequencies(36, 72)
    n = torch.arange(SR, dtype=torch.float64)
    audio = sum(0.3 / h * torch.cos(2 * math.pi * 220 * h * n / SR) for h in (1, 2, 3, 4)).float()  # A3, 4 harmonics
    amp, phase = spectrum(audio[None])
    free = spectral.free_phases(amp.shape[1], 1, freqs, HOP, SR, torch.Generator().manual_seed(0))
    rms = lambda x: x[..., 2 * HOP : -2 * HOP].pow(2).mean().sqrt().item()
    trained = spectral.excitation(spectral.peaks(amp), phase, freqs, HOP, SR).sum(-1)
    rendered = spectral.excitation(spectral.peaks(amp), free, freqs, HOP, SR).sum(-1)
    assert rms(trained) == pytest.approx(rms(audio[None, : trained.shape[1]]), rel=0.05)
    assert rms(rendered) == pytest.approx(rms(trained), rel=0.05)
    assert rms(spectral.excitation(amp, phase, freqs, HOP, SR).sum(-1)) > 1.3 * rms(
        trained
    )  # what training used to see


@pytest.mark.parametrize(
    "output,tolerance", [({}, 0.02), ({"mulaw_bits": 10}, 0.005), ({"sample_output": "logistic"}, 1e-6)]
)
def test_a_residual_renderer_models_the_audio_minus_its_excitation(output, tolerance):
    model = tiny_spectral(**output)
    assert model.cfg.wavenet.residual
    audio = 0.3 * torch.sin(torch.arange(1600) / 10.0)[None]
    excitation = 0.05 * torch.randn(1, 1600, model.cfg.spectrum.bands)  # the residual stays within [-1, 1]
    targets = model.render_targets(audio, excitation, "a")  # quantised once: no coarser than one step of the output
    decode = model.decoders["a"].renderer.output.decode
    torch.testing.assert_close(decode(targets), audio - excitation.sum(-1), atol=tolerance, rtol=0)
    torch.testing.assert_close(model.waveform(decode(targets), excitation.sum(-1)), audio, atol=tolerance, rtol=0)


def test_a_strided_latent_runs_at_a_fifth_of_the_frame_rate(two_domains, tmp_path):
    from umt.checkpoint import load_model
    from umt.errors import UserError
    from umt.training.loop import train
    from umt.translator import Translator

    torch.manual_seed(0)
    model = UMT(preset("tiny-spectral", ["a", "b"], latent_stride=5))
    batch = spectral_batch(model, frames=21)
    assert model.latent(batch["levels_in"][0]).shape[1] == 5  # 21 frames -> ceil(21 / 5) latent frames
    assert "spectrum/a" in losses.terms(model(batch, ["a"]))  # predicted at the frame rate, compared frame for frame
    with pytest.raises(UserError, match="latent_stride"):
        preset("tiny", ["a"], latent_stride=5).check()
    run = train(two_domains, tmp_path / "run", {"preset": "tiny-spectral", "steps": 2, "val_every": 2, "val_items": 2,
                                                "workers": 0, "model_overrides": {"latent_stride": 5}})  # fmt: skip
    assert run.step == 2
    translator = Translator(load_model(tmp_path / "run" / "last.pt"), torch.device("cpu"), chunk_seconds=0.25)
    audio = np.sin(np.arange(SR) / SR * 2 * np.pi * 220).astype(np.float32) * 0.5
    latent = translator.encode(audio)
    assert latent.shape[0] == -(-(SR // HOP + 1) // 5)  # 101 frames -> 21 latent frames of 5
    assert translator.decode([latent], [audio.size], "high", ["x"])[0].shape == audio.shape


def test_oscillators_synthesise_any_window_of_the_whole_excitation():
    freqs = spectral.bin_frequencies(36, 72)
    torch.manual_seed(3)
    amp = spectral.peaks(torch.rand(40, 72) * (torch.rand(40, 72) > 0.9))
    whole_phase = spectral.free_phases(40, 1, freqs, HOP, SR, torch.Generator().manual_seed(5))
    whole = spectral.excitation(amp[None], whole_phase, freqs, HOP, SR)[0]  # [39 * HOP, bands]
    bank = spectral.Oscillators(amp, freqs, HOP, SR, torch.Generator().manual_seed(5))
    torch.testing.assert_close(torch.cat([bank.window(0, 17), bank.window(17, 39)]), whole, atol=2e-5, rtol=0)
    assert bank.window(-3, -1).abs().max() == 0 and bank.window(40, 44).abs().max() == 0  # silence beyond the ends
    torch.testing.assert_close(bank.summed(0, 39), whole.sum(-1), atol=2e-5, rtol=0)
    later = spectral.Oscillators(amp[10:], freqs, HOP, SR, torch.Generator().manual_seed(5), offset=10)  # a piece of it
    torch.testing.assert_close(later.window(10, 39), whole[10 * HOP :], atol=2e-5, rtol=0)

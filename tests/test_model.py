import pytest
import torch

from umt import losses
from umt.config import ModelConfig
from umt.errors import UserError
from umt.model import SILENCE, UMT, parameter_count, shift_right
from umt.modules.classifier import DomainClassifier
from umt.presets import preset
from umt.recipes import Crops, recipe


def small_config(**kw) -> ModelConfig:
    return preset("tiny", ["a", "b"], **kw)


def test_paper_preset_sizes():
    cfg = preset("paper", ["piano", "violin"])
    model = UMT(cfg)
    assert parameter_count(model.encoder) == pytest.approx(2.0e6, rel=0.02)
    assert parameter_count(model.decoders["piano"]) == pytest.approx(6.5e6, rel=0.02)
    assert cfg.sample_rate / cfg.pool == 20  # 20 Hz latent
    assert cfg.wavenet.receptive_field == 4 * (2**14 - 1) + 1
    assert parameter_count(DomainClassifier(cfg)) < 20_000


def test_small_preset_is_far_cheaper():
    paper, small = UMT(preset("paper", ["a"])), UMT(preset("small", ["a"]))
    assert parameter_count(small.encoder) * 5 < parameter_count(paper.encoder)
    assert parameter_count(small.decoders["a"]) * 5 < parameter_count(paper.decoders["a"])


def test_shapes():
    cfg = small_config()
    model = UMT(cfg)
    codes = torch.randint(0, 256, (3, 800))
    latent = model.encode(codes)
    assert latent.shape == (3, 800 // cfg.pool, cfg.latent_channels)
    logits = model.decoders["a"](shift_right(codes), latent)
    assert logits.shape == (3, 800, 256)
    assert DomainClassifier(cfg)(latent).shape == (3, 2)
    cfg.classifier.context = 3  # reads 15 frames around each one
    with_context = DomainClassifier(cfg)
    assert with_context(latent).shape == (3, 2)
    probe = torch.zeros(1, 40, cfg.latent_channels, requires_grad=True)
    with_context.context(probe)[0, 20].sum().backward()
    assert probe.grad[0].abs().sum(-1).nonzero().flatten().tolist() == list(range(13, 28))
    both = codes.view(1, 3, 800).expand(2, 3, 800)
    out = model({"inputs": both, "targets": both}, ["a", "b"])
    terms = losses.terms(out)
    assert sorted(terms) == ["ce/a", "ce/b"] and terms["ce/a"].shape == ()
    assert out.latent.shape == (6, 8, cfg.latent_channels)


def test_checkpoints_from_before_layers_were_modules_load():
    import re

    from umt.checkpoint import upgrade_weights

    cfg = small_config()
    model = UMT(cfg)
    old_names = {  # the keys as they were
        r"encoder\.stack\.layers\.(\d+)\.conv": r"encoder.convs.\1", r"encoder\.stack\.layers\.(\d+)\.mix": r"encoder.mixes.\1",
        r"layers\.(\d+)\.conv": r"convs.\1", r"layers\.(\d+)\.res_skip": r"res_skip.\1",
    }  # fmt: skip
    old = {}
    for key, value in model.state_dict().items():
        for pattern, replacement in old_names.items():
            key = re.sub(pattern, replacement, key)
        old[key] = value
    assert (
        "encoder.convs.0.weight" in old and "decoders.a.res_skip.0.bias" in old and "decoders.a.convs.4.weight" in old
    )
    fresh = UMT(cfg)
    fresh.load_state_dict(upgrade_weights({**old, "spectrum.cqt.cqt_kernels_real": torch.zeros(1)}))  # (early: stored)
    for a, b in zip(fresh.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_shift_right_starts_from_silence():
    codes = torch.tensor([[5, 6, 7]])
    assert shift_right(codes).tolist() == [[SILENCE, 5, 6]]


def influence(fn, x: torch.Tensor, position: int) -> torch.Tensor:
    """Which output positions change when input `position` changes."""
    changed = x.clone()
    changed[:, position] = (changed[:, position] + 97) % 256 if x.dtype == torch.long else changed[:, position] + 0.5
    return (fn(x) - fn(changed)).abs().flatten(2).amax(-1)[0] > 0


def test_decoder_receptive_field():
    cfg = small_config()
    torch.manual_seed(0)
    decoder = UMT(cfg).decoders["a"]
    latent = torch.randn(1, 4, cfg.latent_channels)
    previous = torch.randint(0, 256, (1, 400))
    with torch.no_grad():
        hit = influence(lambda p: decoder(p, latent), previous, 100)
    # previous[t] is the target at t-1: it reaches logits t .. t + receptive field - 1.
    assert hit.nonzero().flatten().tolist() == list(range(100, 100 + cfg.wavenet.receptive_field))


def test_encoder_receptive_field():
    cfg = small_config(pool=1)
    torch.manual_seed(0)
    encoder = UMT(cfg).encoder
    audio = torch.rand(1, 200) - 0.5
    with torch.no_grad():
        hit = influence(lambda a: encoder(a).unsqueeze(-1), audio, 100)
    half = cfg.encoder.receptive_field // 2
    assert hit.nonzero().flatten().tolist() == list(range(100 - half, 100 + half + 1))


def test_decoder_is_causal():
    """Changing the target at t and later never changes the logits at t or before."""
    cfg = small_config()
    torch.manual_seed(1)
    decoder = UMT(cfg).decoders["a"]
    latent = torch.randn(2, 6, cfg.latent_channels)
    target = torch.randint(0, 256, (2, 600))
    for t in (0, 1, 77, 300, 599):
        changed = target.clone()
        changed[:, t:] = torch.randint(0, 256, changed[:, t:].shape)
        with torch.no_grad():
            a, b = decoder(shift_right(target), latent), decoder(shift_right(changed), latent)
        assert torch.equal(a[:, : t + 1], b[:, : t + 1])
        if t < 599:
            assert not torch.equal(a[:, t + 1 :], b[:, t + 1 :])


def test_crop_must_fit_the_latent_frames():
    cfg = small_config()
    recipe(cfg).check(Crops(crop=400))
    with pytest.raises(UserError, match="--crop 450: must be a positive multiple"):
        recipe(cfg).check(Crops(crop=450))
    with pytest.raises(UserError, match="preset .huge.: choose from"):
        preset("huge", ["a"])


def test_activation_checkpointing_gives_the_same_gradients():
    cfg = small_config()
    torch.manual_seed(2)
    decoder = UMT(cfg).decoders["a"]
    latent = torch.randn(2, 4, cfg.latent_channels)
    target = torch.randint(0, 256, (2, 400))

    def grads():
        decoder.zero_grad()
        logits = decoder(shift_right(target), latent)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten()).backward()
        return [p.grad.clone() for p in decoder.parameters()]

    plain = grads()
    decoder.activation_checkpointing = True
    for a, b in zip(plain, grads()):
        torch.testing.assert_close(a, b)


def test_settings_are_nested_and_read_the_flat_names_of_older_models():
    from umt.config import parse_settings

    cfg = preset("tiny-spectral", ["a", "b"])
    flat = {"encoder_channels": 24, "render_residual": False, "spectrum_flutter": True, "codebooks": 2,
            "domains": ["a", "b"], "decoder_type": "spectral", "encoder_input": "spectrum", "no_longer_a_setting": 1}  # fmt: skip
    old = ModelConfig.from_dict(flat)  # a model saved before the nesting
    assert (old.encoder.channels, old.wavenet.residual, old.frames.flutter, old.tokenizer.codebooks) == (
        24,
        False,
        True,
        2,
    )
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["wavenet"]["residual"] is True
    assert parse_settings(["encoder.channels=8", "render_residual=false", "frames.flutter=true"]) == {
        "encoder.channels": 8, "wavenet.residual": False, "frames.flutter": True}  # fmt: skip
    for bad in ("encoder=8", "encoder.width=8", "domains=a"):
        with pytest.raises(UserError, match="--model-set"):
            parse_settings([bad])
    assert preset("tiny", ["a"], **{"wavenet.layers": 3}).wavenet.receptive_field == 1 * (2**3 - 1) + 1

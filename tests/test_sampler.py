import numpy as np
import pytest
import torch

from umt.audio import mu_law_encode
from umt.encoding import array_reader, encode_long
from umt.model import SILENCE, UMT, shift_right
from umt.presets import preset
from umt.sampler import InverseCdfSampler, PackedDecoder, Stream, generate
from umt.translator import Translator


def decoder_and_latent(seed=0, frames=5, batch=3, **overrides):
    torch.manual_seed(seed)
    cfg = preset("tiny", ["a"], **overrides)
    decoder = UMT(cfg).decoders["a"].eval()
    for p in decoder.parameters():  # larger weights than the default init: a sterner test
        p.data.mul_(2.0)
    return cfg, decoder, torch.randn(batch, frames, cfg.latent_channels)


@pytest.mark.parametrize("blocks,layers", [(1, 5), (2, 4)])
def test_incremental_logits_equal_the_full_forward(blocks, layers):
    cfg, decoder, latent = decoder_and_latent(decoder_blocks=blocks, decoder_layers=layers)
    codes = torch.randint(0, 256, (3, latent.shape[1] * cfg.pool))
    with torch.no_grad():
        full = decoder(shift_right(codes), latent)
    packed = PackedDecoder(decoder, cfg.pool)
    stream = Stream(packed)
    stream.start(*packed.conditioning(latent))
    previous = torch.full((3,), SILENCE)
    with torch.no_grad():
        for t in range(codes.shape[1]):  # every step, across frame boundaries and ring wrap-arounds
            torch.testing.assert_close(stream.step(previous), full[:, t], rtol=0, atol=1e-4)
            previous = codes[:, t]


def test_greedy_generation_is_the_argmax_of_the_full_forward():
    cfg, decoder, latent = decoder_and_latent(frames=2)
    packed = PackedDecoder(decoder, cfg.pool)
    codes = generate(packed, latent, temperature=0.0, streams=2)
    with torch.no_grad():
        logits = decoder(shift_right(codes), latent)
    assert torch.equal(logits.argmax(-1), codes)


def test_sampling_is_seeded_per_row_and_follows_the_softmax():
    cfg, decoder, latent = decoder_and_latent(frames=2, batch=4)
    packed = PackedDecoder(decoder, cfg.pool)
    a = generate(packed, latent, 1.0, seeds=[1, 2, 3, 4], streams=1)
    b = generate(packed, latent, 1.0, seeds=[1, 2, 3, 4], streams=2)
    assert torch.equal(a, b)  # the split into streams changes nothing
    alone = generate(packed, latent[2:3], 1.0, seeds=[3], streams=1)
    assert torch.equal(alone[0], a[2])  # nor does the batch a row sits in
    assert not torch.equal(generate(packed, latent, 1.0, seeds=[5, 6, 7, 8]), a)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampler_draws_from_the_softmax(temperature):
    torch.manual_seed(0)
    logits = torch.randn(2, 256) * 3
    expected = torch.softmax(logits / temperature, -1)
    sampler = InverseCdfSampler([11, 12], temperature, torch.device("cpu"))
    n = 20000
    counts = torch.zeros(2, 256)
    out = torch.empty(2, dtype=torch.long)
    for _ in range(n):
        codes = sampler.sample(logits.clone(), out)
        counts[[0, 1], codes] += 1
    # Every code's frequency within 5 standard errors of its probability.
    tolerance = 5 * torch.sqrt(expected * (1 - expected) / n) + 1e-4
    assert ((counts / n - expected).abs() <= tolerance).all()


def test_windowed_encoding_equals_whole_file_encoding():
    torch.manual_seed(0)
    cfg = preset("tiny", ["a"], encoder_layers=6)  # receptive field 129 samples > one 100-sample frame
    model = UMT(cfg).eval()
    audio = torch.rand(40 * cfg.pool) - 0.5
    with torch.no_grad():
        whole = model.encode(mu_law_encode(audio).unsqueeze(0))[0]
    for window in (1, 3, 7, 40):
        torch.testing.assert_close(
            encode_long(model, array_reader(audio.numpy()), audio.numel(), window), whole, rtol=0, atol=1e-5
        )


@pytest.mark.parametrize("stride", [1, 5])
def test_windowed_encoding_over_the_spectrum_equals_whole_file_encoding(stride):
    torch.manual_seed(0)
    cfg = preset("tiny-spectral", ["a"], latent_stride=stride, encoder_input="spectrum")
    model = UMT(cfg).eval()
    audio = (torch.rand(300 * cfg.pool) - 0.5) * torch.linspace(0, 1, 300 * cfg.pool)
    with torch.no_grad():
        whole = model.encode(mu_law_encode(audio).unsqueeze(0))[0]
    assert whole.shape[0] == -(-301 // stride)
    for window in (7, 13, 100):
        torch.testing.assert_close(
            encode_long(model, array_reader(audio.numpy()), audio.numel(), window), whole, rtol=0, atol=1e-4
        )


def test_chunks_join_like_an_unchunked_run():
    """With a decoder whose output depends only on the latent (no input embedding, greedy),
    the chunked translation equals a single-chunk run except in the crossfades."""
    torch.manual_seed(3)
    cfg = preset("tiny", ["a"])
    model = UMT(cfg).eval()
    model.decoders["a"].embed.weight.data.zero_()
    audio = np.random.default_rng(0).random(37 * cfg.pool + 30).astype(np.float32) - 0.5
    device = torch.device("cpu")
    whole = Translator(model, device, chunk_seconds=100, temperature=0)
    chunked = Translator(model, device, chunk_seconds=5 * cfg.pool / cfg.sample_rate, temperature=0, batch_size=3)
    latent = whole.encode(audio)
    one = whole.decode([latent], [audio.size], "a", ["x"])[0]
    many = chunked.decode([latent], [audio.size], "a", ["x"])[0]
    assert one.shape == many.shape == audio.shape
    p = cfg.pool
    # Chunk j > 0 crossfades in output samples [5 j p - p, 5 j p) (the timeline minus the warm-up).
    fades = np.zeros(audio.size, bool)
    for j in range(1, 8):
        fades[5 * j * p - p : 5 * j * p] = True
    assert fades.sum() == 7 * p
    np.testing.assert_array_equal(one[~fades], many[~fades])
    # In the crossfades the two equal signals blend smoothly: no jump bigger than the signal's own.
    assert np.abs(np.diff(many)).max() <= np.abs(np.diff(one)).max() * 1.5 + 1e-6

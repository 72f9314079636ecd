#!/usr/bin/env python3
"""Autoregressive generation speed of one decoder (untrained: speed does not depend on the weights).

    python bench/sampler.py --preset paper --batch 32 --seconds 1
    python bench/sampler.py --preset small --batch 256 --seconds 1 --baseline
    python bench/sampler.py --preset spectral --batch 30 --seconds 1   # the renderer, with its excitation
    python bench/sampler.py --preset spectral --batch 30 --seconds 1 --output logistic   # another output (umt.outputs)

Counts every batch row: samples_per_s = batch * seconds * sample_rate / wall time, printed
as the last line. Also prints the arithmetic rate against a measured matmul peak of this
machine, and with --baseline the naive approach (a full forward pass over the receptive
field for every new sample) on a short run.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from umt.model import SILENCE, UMT, shift_right
from umt.presets import PRESETS, preset
from umt.sampler import PackedDecoder, Stream, default_streams, generate


def matmul_peak(dtype: torch.dtype, device: torch.device, seconds: float = 1.0) -> float:
    """FLOP/s of a large square matmul, the ceiling for this arithmetic on this machine."""
    n = 2048
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * count / (time.perf_counter() - start)


@torch.no_grad()
def naive_rate(decoder, latent: torch.Tensor, pool: int, receptive_field: int, steps: int, excited: bool) -> float:
    """Samples/s when every new sample re-runs the decoder over its whole receptive field."""
    b = latent.shape[0]
    history = torch.full((b, receptive_field), 128, dtype=torch.long, device=latent.device)
    frames = -(-receptive_field // pool)
    context = latent[:, :1].expand(b, frames, latent.shape[-1])
    padded = torch.nn.functional.pad(history, (frames * pool - receptive_field, 0), value=128)
    excitation = torch.zeros(b, frames * pool, decoder.excite.in_features, device=latent.device) if excited else None
    start = time.perf_counter()
    for _ in range(steps):
        logits = decoder(shift_right(padded), context, excitation)[:, -1]
        padded = torch.cat([padded[:, 1:], logits.argmax(-1, keepdim=True)], dim=1)
    return b * steps / (time.perf_counter() - start)


@torch.no_grad()
def bf16_agreement(decoder, latent: torch.Tensor, pool: int, excitation: torch.Tensor | None) -> str:
    """Feed the same code sequence (sampled in fp32) to an fp32 and a bf16 stream and compare
    their output distributions step by step."""
    fp32, bf16 = PackedDecoder(decoder, pool, torch.float32), PackedDecoder(decoder, pool, torch.bfloat16)
    codes = generate(fp32, latent, 1.0, streams=1, excitation=excitation)
    streams = [Stream(p) for p in (fp32, bf16)]
    for stream, packed in zip(streams, (fp32, bf16)):
        stream.start(*packed.conditioning(latent))
    previous = torch.full((latent.shape[0],), SILENCE, dtype=torch.long, device=latent.device)
    kl = agree = worst = 0.0
    for t in range(codes.shape[1]):
        now = None if excitation is None else excitation[:, t]
        a, b = (
            s.step(previous, None if now is None else now.to(p.dtype)).float() for s, p in zip(streams, (fp32, bf16))
        )
        la, lb = a.log_softmax(-1), b.log_softmax(-1)
        kl += (la.exp() * (la - lb)).sum(-1).mean().item()
        agree += (a.argmax(-1) == b.argmax(-1)).float().mean().item()
        worst = max(worst, (a - b).abs().max().item())
        previous = codes[:, t]
    n = codes.shape[1]
    return f"bf16 vs fp32 on the same inputs: mean KL {kl / n:.2e} nats, argmax agreement {100 * agree / n:.1f}%, max |logit diff| {worst:.3f}"


OUTPUTS = {
    "mulaw8": {},
    "mulaw10": {"mulaw_bits": 10},
    "logistic": {"sample_output": "logistic"},
}  # ModelConfig settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=list(PRESETS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=1.0, help="audio generated per batch row")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--streams", type=int, help="parallel streams (default: one per CPU core)")
    parser.add_argument("--baseline", action="store_true", help="also time the naive recompute-everything loop")
    parser.add_argument("--baseline-steps", type=int, default=3, help="samples the naive loop generates (batch 1)")
    parser.add_argument("--check-bf16", action="store_true", help="compare bf16 with fp32 output distributions")
    parser.add_argument(
        "--output", choices=list(OUTPUTS), default="mulaw8", help="what the WaveNet predicts (default: %(default)s)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    torch.manual_seed(0)
    cfg = preset(args.preset, ["bench"], **OUTPUTS[args.output])
    decoder = UMT(cfg).decoders["bench"]
    decoder = (decoder.renderer if cfg.spectral else decoder).to(device).eval()  # a spectral decoder's WaveNet
    frames = max(1, round(args.seconds * cfg.sample_rate / cfg.pool))
    latent = torch.randn(args.batch, frames, cfg.spectrum.bins if cfg.spectral else cfg.latent_channels, device=device)
    excitation = torch.randn(args.batch, frames * cfg.pool, cfg.spectrum.bands, device=device) if cfg.spectral else None
    packed = PackedDecoder(decoder, cfg.pool, dtype)
    streams = args.streams or default_streams(device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    )

    first = None if excitation is None else excitation[:, : cfg.pool]
    generate(packed, latent[:, :1], streams=streams, excitation=first)  # warm-up: allocation, first-touch of buffers
    start = time.perf_counter()
    generate(packed, latent, 1.0, streams=streams, excitation=excitation)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = args.batch * frames * cfg.pool / (time.perf_counter() - start)
    peak = matmul_peak(dtype, device)
    achieved = rate * packed.flops_per_sample
    print(f"device: {where}; preset {args.preset}, decoder receptive field {cfg.wavenet.receptive_field} samples")
    print(
        f"incremental: batch {args.batch} x {frames * cfg.pool} samples, {args.output} output, {args.precision}, {streams} stream(s): "
        f"{rate:,.0f} samples/s = {rate / cfg.sample_rate:.2f}x real time"
    )
    print(
        f"arithmetic: {packed.flops_per_sample / 1e6:.2f} MFLOP/sample -> {achieved / 1e9:.0f} GFLOP/s, "
        f"{100 * achieved / peak:.0f}% of the measured {args.precision} matmul peak ({peak / 1e9:.0f} GFLOP/s)"
    )
    if args.baseline:
        naive = naive_rate(
            decoder, latent[:1], cfg.pool, cfg.wavenet.receptive_field, args.baseline_steps, cfg.spectral
        )
        print(
            f"naive (batch 1, a full forward over the {cfg.wavenet.receptive_field}-sample receptive field "
            f"per sample): {naive:,.2f} samples/s; incremental is {rate / naive:,.0f}x faster"
        )
    if args.check_bf16:
        print(
            bf16_agreement(
                decoder, latent[:4, :2], cfg.pool, None if excitation is None else excitation[:4, : 2 * cfg.pool]
            )
        )
    print(f"samples_per_s={rate:.0f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Training throughput: seconds per full training step (encoder, every decoder, classifier
step, adversarial term, backward, Adam) on random data of the preset's shapes.

    python bench/train_throughput.py --preset spectral --precision bf16              # frames part
    python bench/train_throughput.py --preset spectral --precision bf16 --chroma-weight 0
    python bench/train_throughput.py --preset spectral --precision bf16 --part renderers
    python bench/train_throughput.py --preset small --domains 4

A spectral preset's step has two parts with their own batches (README, "Training"): --part
frames (encoder, frame networks, classifier; with the preset's translation-chroma term unless
--chroma-weight says otherwise) or renderers (the WaveNets on real spectra). Prints one line
per configuration and, last, samples_per_s=<number>.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch

from umt import spectral
from umt.model import describe
from umt.presets import PRESETS, preset
from umt.runtime import autocast_dtype
from umt.training.config import TrainConfig, build_run
from umt.training.step import train_step


def random_batch(cfg, part: str, domains: int, batch: int, crop: int, device: torch.device) -> dict[str, torch.Tensor]:
    """UMT.forward's [D, B, ...] batch of random data for one part of a step."""
    if not cfg.spectral:
        codes = torch.randint(0, 256, (domains, batch, crop), device=device)
        return {"inputs": codes, "targets": codes}
    frames = crop // cfg.pool
    if part == "frames":
        levels = torch.rand(domains, batch, frames, cfg.spectrum.bins, device=device)
        return {"levels_in": levels, "levels": levels}
    levels = torch.rand(domains, batch, frames + 1, cfg.spectrum.bins, device=device)
    return {
        "codes": torch.randint(0, 256, (domains, batch, crop), device=device), "render_levels": levels[:, :, :frames],
        "amplitude": spectral.amplitude(levels) * 0.01, "phase": torch.rand_like(levels) * (2 * math.pi),
    }  # fmt: skip


def measure(name: str, part: str, domains: int, batch: int, crop: int, steps: int, precision: str, device: torch.device,
            checkpointing: bool, chroma_weight: float | None) -> float:  # fmt: skip
    cfg = preset(name, [f"domain{i}" for i in range(domains)])
    weight = {} if chroma_weight is None else {"loss_weights": {"translation_chroma": chroma_weight}}
    tcfg = TrainConfig.layered(PRESETS[name].training, {"preset": name, "precision": precision,
                               "activation_checkpointing": checkpointing}, weight)  # fmt: skip
    dtype = autocast_dtype(precision, device)
    run = build_run(cfg, tcfg, cfg.domains, device, dtype)
    data = random_batch(cfg, part, domains, batch, crop, device)
    train_step(run, run.model, run.classifier, data, tcfg, dtype, device)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(run, run.model, run.classifier, data, tcfg, dtype, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return domains * batch * crop / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="spectral")
    parser.add_argument(
        "--part", choices=["frames", "renderers"], default="frames", help="a spectral preset's part of a step"
    )
    parser.add_argument("--domains", type=int, default=4)
    parser.add_argument("--batch-size", type=int, help="per domain (default: the preset's for the part)")
    parser.add_argument("--crop", type=int, help="samples (default: the preset's for the part)")
    parser.add_argument(
        "--chroma-weight",
        type=float,
        help="spectral frames: the translation-chroma term's weight (default: the preset's)",
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    training = PRESETS[args.preset].training
    renderers = args.part == "renderers" and "render_batch_size" in training
    batch = args.batch_size or training["render_batch_size" if renderers else "batch_size"]
    crop = args.crop or training["render_crop" if renderers else "crop"]
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    )
    print(f"# {args.preset}: {describe(preset(args.preset, ['d'] * 1)).splitlines()[1]}")
    rate, seconds = measure(args.preset, args.part, args.domains, batch, crop, args.steps, args.precision, device,
                            args.activation_checkpointing, args.chroma_weight)  # fmt: skip
    part = f" part={args.part}" if "render_batch_size" in training else ""
    chroma = f" chroma_weight={args.chroma_weight}" if args.chroma_weight is not None else ""
    print(
        f"preset={args.preset}{part}{chroma} domains={args.domains} batch={batch} crop={crop} precision={args.precision} "
        f"checkpointing={args.activation_checkpointing} device={where}: {seconds:.2f} s/step"
    )
    print(f"samples_per_s={rate:.0f}")


if __name__ == "__main__":
    main()

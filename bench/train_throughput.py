#!/usr/bin/env python3
"""Training throughput: samples per second of full training steps (encoder, every decoder,
classifier step, adversarial term, backward, Adam) on random mu-law codes.

    python bench/train_throughput.py --preset small --domains 4
    python bench/train_throughput.py --preset paper --domains 1 --batch-size 4 --crop 12000

Prints one line per configuration and, last, samples_per_s=<number>.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from umt.model import describe
from umt.presets import PRESETS, preset
from umt.runtime import autocast_dtype
from umt.train import TrainConfig, build_run, train_step


def measure(name: str, domains: int, batch: int, crop: int, steps: int, precision: str, device: torch.device,
            checkpointing: bool) -> float:  # fmt: skip
    cfg = preset(name, [f"domain{i}" for i in range(domains)])
    tcfg = TrainConfig(preset=name, batch_size=batch, crop=crop, precision=precision, activation_checkpointing=checkpointing)
    dtype = autocast_dtype(precision, device)
    run = build_run(cfg, tcfg, cfg.domains, device, dtype)
    codes = torch.randint(0, 256, (domains, batch, crop), device=device)
    train_step(run, run.model, run.classifier, codes, codes, tcfg, dtype, device)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(run, run.model, run.classifier, codes, codes, tcfg, dtype, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return domains * batch * crop / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--domains", type=int, default=4)
    parser.add_argument("--batch-size", type=int, help="per domain (default: the preset's)")
    parser.add_argument("--crop", type=int, help="samples (default: the preset's)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    batch = args.batch_size or PRESETS[args.preset].training["batch_size"]
    crop = args.crop or PRESETS[args.preset].training["crop"]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    print(f"# {args.preset}: {describe(preset(args.preset, ['d'] * 1)).splitlines()[1]}")
    rate, seconds = measure(args.preset, args.domains, batch, crop, args.steps, args.precision, device,
                            args.activation_checkpointing)  # fmt: skip
    print(
        f"preset={args.preset} domains={args.domains} batch={batch} crop={crop} precision={args.precision} "
        f"checkpointing={args.activation_checkpointing} device={where}: {seconds:.2f} s/step"
    )
    print(f"samples_per_s={rate:.0f}")


if __name__ == "__main__":
    main()

"""Flags that several commands share, and what they turn into."""

from __future__ import annotations

import argparse
import math


def finite(text: str) -> float:
    """An argparse type: a float that is neither NaN nor infinite (argparse words the refusal)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def device(name: str):
    from umt.runtime import resolve_device

    return resolve_device(name)


def device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N (default: %(default)s)"
    )


def sampling_flags(parser: argparse.ArgumentParser) -> None:
    """--temperature and --flutter: each overrides, for every domain, the model's own choice (umt.translator.Sampling)."""
    parser.add_argument(
        "--temperature", type=float,
        help="the WaveNets' sampling temperature, every domain; 0 = the likeliest value (default: the model's own choice "
        "per domain, else 1)",
    )  # fmt: skip
    parser.add_argument(
        "--flutter", type=float,
        help="spectral models with flutter heads: how much of the frame-to-frame flutter they predict is drawn onto "
        "the spectrum, every domain; 0 = the median spectrum, smooth (default: the model's own choice per domain, else 1)",
    )  # fmt: skip


def renderer_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--renderer", choices=["wavenet", "sines"], default="wavenet",
        help="wavenet: each domain's autoregressive WaveNet; sines (spectral models): the predicted spectrum played "
        "by a bank of sinusoids, a quick preview without the WaveNet (default: %(default)s)",
    )  # fmt: skip


def tokens_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokens", action="store_true",
        help="go through the model's tokens: the latent its tokenizer quantises (umt tokenizer train)",
    )  # fmt: skip


def steer_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--steer", action="append", default=[], metavar="PROBE[:ALPHA]",
        help="nudge the model towards a probe's trait (umt probe train), ALPHA standard deviations along its "
        "direction, each site weighted by its probe's accuracy (default 2; negative: away from it); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--no-steer-monitor", dest="steer_monitor", action="store_false",
        help="nudge at full strength throughout; by default the nudge weakens as the probes read the trait and "
        "stops once they are as sure as they are accurate (SMITIN's self-monitoring)",
    )  # fmt: skip


def steering(args: argparse.Namespace, groups: list[list]):
    """The Steering of the --steer flags over these groups of sites (umt.steering.choose), or None."""
    from umt.steering import choose

    return choose(args.steer, groups, args.steer_monitor)


def jobs_flag(parser: argparse.ArgumentParser) -> None:
    from umt.data.prepare import default_jobs

    parser.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: %(default)s)")

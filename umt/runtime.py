"""Where code runs: the device, the torchrun process group, mixed precision.

Training, translation and evaluation all pick their device here; only training joins a
process group (one process per GPU under torchrun) and uses autocast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from umt.errors import UserError

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Process:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    """--device auto|cpu|cuda|cuda:N -> torch.device ('auto': CUDA when there is one)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise UserError(f"--device {name}: choose auto, cpu, cuda or cuda:N")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available")
    if index and int(index) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: there are {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    return torch.device(name)


def start_process(device: str) -> Process:
    """Join the torchrun process group if there is one, and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = str(resolve_device(device))
    if device == "cuda":  # this process's GPU (torch.cuda.set_device needs an index)
        device = f"cuda:{local_rank}"
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    return Process(rank, world, torch.device(device))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None means full fp32."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(dtype: torch.dtype | None, device: torch.device):
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """While open, SIGINT (Ctrl-C) and SIGTERM set the event instead of raising, so a loop can
    finish its step, save and stop; a second Ctrl-C raises KeyboardInterrupt at once."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield event
        return

    def handler(signum, frame):
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

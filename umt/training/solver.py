"""The solver every training loop here runs on (the model's, the tokenizer's through it, the
judge's and the token LM's): the run folder, resume, checkpoints, validation, a clean stop.

A subclass says what one step does (run_step), what validation scores (validate; lower is
better, best.pt keeps the best), what a checkpoint holds (state) and how it logs; fit() does
the rest:
  - last.pt every `checkpoint_every` steps and at the last step, so a kill loses at most that;
  - step<N>.pt every `keep_every` steps (0: none), for curves over training time;
  - with `patience`, the run ends early once that many validations in a row found no better
    score (it has stopped improving; last.pt saved);
  - Ctrl-C or SIGTERM finishes the step, saves last.pt and stops (KeyboardInterrupt; the CLI
    exits 130); under torchrun every process stops after the same step;
  - a new run refuses a folder that already holds one, and `resume` continues it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.distributed as dist

from umt.checkpoint import save_checkpoint
from umt.errors import UserError
from umt.runtime import CPU, Process, stop_requests

ALONE = Process(rank=0, world=1, device=CPU)


def run_state(out: Path, resume: bool, load: Callable[[Path], dict]) -> dict | None:
    """The state to continue the run in `out` from (its last.pt, read by `load`) when resuming;
    None for a new run, which needs a folder without one."""
    last = out / "last.pt"
    if resume:
        return load(last)
    if last.exists():
        raise UserError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")
    return None


class Solver:
    """One run: `steps` steps in `out`; this process is `proc` (rank 0 writes every file)."""

    def __init__(self, out: Path, steps: int, checkpoint_every: int, val_every: int, keep_every: int = 0,
                 proc: Process = ALONE, step: int = 0, best: float = math.inf, patience: int = 0):  # fmt: skip
        self.out, self.steps, self.proc = out, steps, proc
        self.checkpoint_every, self.val_every, self.keep_every = checkpoint_every, val_every, keep_every
        self.step = step  # steps done (a resumed run starts where it stopped)
        self.best = best  # the best validation score so far
        self.patience = patience  # validations without a better score that end the run (0: never)
        self.since_best = 0  # validations since the best score (a subclass's state keeps it for resume)

    # ------------------------------------------------------------ what a subclass says

    def run_step(self, batch) -> dict[str, float]:
        """One optimisation step; returns the figures to log."""
        raise NotImplementedError

    def validate(self) -> float | None:
        """Score the model on held-out data and log it; None when there is nothing to score."""
        return None

    def state(self) -> dict:
        """Everything a checkpoint holds (the step and best score included, for resume)."""
        raise NotImplementedError

    def log_step(self, stats: dict[str, float]) -> None:
        """Report a finished step (rank 0 only)."""

    def line(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        """Close what logging opened."""

    # ------------------------------------------------------------ the loop

    def fit(self, batches: Iterable) -> None:
        """Run steps on `batches` until they end (or a stop is asked for), saving as it goes."""
        if self.proc.main:
            self.out.mkdir(parents=True, exist_ok=True)
        ended = self._converged()  # resumed where patience had ended it: no step more
        with stop_requests() as stopping:
            try:
                for batch in () if ended else batches:
                    self.advance(batch)
                    if self._stop_agreed(stopping) or self._converged():
                        break
            except Exception:
                if not stopping.is_set():  # else a DataLoader worker that the same Ctrl-C ended
                    raise
            if stopping.is_set():
                if self.proc.main:
                    self.save("last.pt")
                    self.line(f"interrupted at step {self.step}: saved {self.out / 'last.pt'}; continue with --resume")
                self.close()
                raise KeyboardInterrupt
        self.close()
        if self.proc.world > 1:
            dist.barrier()

    def advance(self, batch) -> None:
        """One step, and on rank 0 its log, validation and checkpoints."""
        stats = self.run_step(batch)
        self.step += 1
        if not self.proc.main:
            return
        self.log_step(stats)
        last_step = self.step == self.steps
        if self.step % self.val_every == 0 or last_step:
            score = self.validate()
            if score is not None and score < self.best:
                self.best, self.since_best = score, 0
                self.save("best.pt")
            elif score is not None:
                self.since_best += 1
        if self.step % self.checkpoint_every == 0 or last_step or self.since_best == self.patience > 0:
            self.save("last.pt")
        if self.keep_every and self.step % self.keep_every == 0:
            self.save(f"step{self.step}.pt")

    def save(self, name: str) -> None:
        save_checkpoint(self.out / name, self.state())

    def _converged(self) -> bool:
        """Whether validation has stopped improving (rank 0 decides; every process ends). Asked
        after every step, decided only after a validation."""
        if not self.patience or self.step % self.val_every and self.step != self.steps:
            return False
        done = self.since_best >= self.patience
        if self.proc.world > 1:
            flag = torch.tensor([float(done)], device=self.proc.device)
            dist.broadcast(flag, src=0)
            done = bool(flag.item())
        if done and self.proc.main:
            self.line(
                f"step {self.step}: no better validation in {self.patience} running: stopped ({self.out / 'last.pt'})"
            )
        return done

    def _stop_agreed(self, stopping: threading.Event) -> bool:
        """Whether any process was asked to stop (all of them then stop after the same step)."""
        if self.proc.world == 1:
            return stopping.is_set()
        flag = torch.tensor([float(stopping.is_set())], device=self.proc.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            stopping.set()
        return stopping.is_set()

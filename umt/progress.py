"""Progress of long jobs: a tqdm bar on a terminal, plain lines elsewhere.

When stderr is not a terminal (a log file, a pipe, a batch system), a bar would print
nothing useful; a line every EVERY_SECONDS with what is done, the rate and the time left does.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:  # typing.Self is Python 3.11+; annotations are not evaluated (from __future__)
    from typing import Self

EVERY_SECONDS = 10.0


class Progress:
    def __init__(self, total: float | None, desc: str, unit: str, position: int = 0):
        self.total, self.desc, self.unit = total, desc, unit
        self.done = 0.0
        self.bar = (
            tqdm(total=total, desc=desc, unit=unit, unit_scale=True, position=position) if sys.stderr.isatty() else None
        )
        self.start: float | None = None  # the first update: setting up does not count against the rate

    def update(self, n: float = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.start is None:
            self.start = self.last = now
        elif now - self.last >= EVERY_SECONDS:
            self.last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        rate = self.done / max(now - self.start, 1e-9)
        text = f"{self.desc}: {_amount(self.done)}"
        if self.total:
            text += f" of {_amount(self.total)} {self.unit}s ({100 * self.done / self.total:.0f} %)"
            if rate > 0:
                text += f", {_amount(rate)} {self.unit}s/s, {_duration((self.total - self.done) / rate)} left"
        else:
            text += f" {self.unit}s, {_amount(rate)} {self.unit}s/s"
        return text

    def write(self, message: str) -> None:
        """A message that does not break the bar."""
        (self.bar.write if self.bar is not None else print)(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _amount(x: float) -> str:
    for limit, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if x >= limit:
            return f"{x / limit:.1f}{suffix}"
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )

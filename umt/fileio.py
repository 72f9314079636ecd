"""Atomic writes (a file either appears complete under its final name or not at all) and
advisory locks between processes writing into one folder."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds.

    The temporary file lives in the same directory so the final `os.replace` is a
    same-filesystem rename, which POSIX guarantees to be atomic. On any error (or a
    KeyboardInterrupt) the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


def try_lock(path: str | os.PathLike) -> int | None:
    """Take an exclusive advisory lock (flock) on `path`, created if need be: its file
    descriptor, or None when another process holds it. Closing the descriptor releases the
    lock, and so does the end of the process, however it ends: no lock is ever left stale."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def locked(path: str | os.PathLike, waiting: Callable[[], None]) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` for the block; if another process holds it,
    call `waiting` once and wait for it."""
    fd = try_lock(path)
    if fd is None:
        waiting()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)

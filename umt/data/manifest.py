"""The manifest of a prepared dataset: which files, how long, which split.

`umt prepare` writes it as PREP/manifest.json; training and evaluation read it.
Audio lives next to it as int16 .npy files that are memory-mapped, never loaded whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from umt.errors import UserError
from umt.fileio import write_json

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "val", "test")
MANIFEST_VERSION = 1


def pcm_to_float(pcm: np.ndarray) -> np.ndarray:
    """Stored int16 samples -> float32 in [-1, 1)."""
    return pcm.astype(np.float32) / 32768.0


@dataclass
class FileEntry:
    domain: str
    source: str  # path relative to the source folder, posix style
    path: str  # the int16 .npy, relative to the prepared folder
    samples: int
    split: str
    source_size: int
    source_mtime_ns: int
    piece: str | None = None  # pairing key: the same piece rendered in several domains


@dataclass
class Manifest:
    sample_rate: int
    seed: int
    split_fractions: dict[str, float]
    domains: list[str] = field(default_factory=list)  # every domain folder, even one left empty
    paired: bool = False
    files: list[FileEntry] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"source", "reason"}
    root: Path | None = None  # the prepared folder (not stored)

    def entries(self, domain: str | None = None, split: str | None = None) -> list[FileEntry]:
        return [f for f in self.files if (domain is None or f.domain == domain) and (split is None or f.split == split)]

    def seconds(self, domain: str, split: str | None = None) -> float:
        return sum(f.samples for f in self.entries(domain, split)) / self.sample_rate

    def load(self, entry: FileEntry) -> np.ndarray:
        """The entry's int16 samples, memory-mapped."""
        assert self.root is not None, "manifest was not read from a folder"
        return np.load(self.root / entry.path, mmap_mode="r")

    def excerpt(self, entry: FileEntry, start: int, samples: int) -> np.ndarray:
        """`samples` samples of the entry from `start`, as float32 in [-1, 1)."""
        return pcm_to_float(self.load(entry)[start : start + samples])

    def totals(self) -> dict[str, dict]:
        """Per-domain file counts and seconds per split (stored in the JSON for people to read)."""
        return {
            d: {
                "files": len(self.entries(d)),
                "seconds": {s: round(self.seconds(d, s), 3) for s in SPLITS},
                "skipped": sum(1 for s in self.skipped if s["source"].split("/", 1)[0] == d),
            }
            for d in self.domains
        }

    def save(self, folder: Path) -> None:
        write_json(
            folder / MANIFEST_NAME,
            {
                "version": MANIFEST_VERSION,
                "sample_rate": self.sample_rate,
                "seed": self.seed,
                "split_fractions": self.split_fractions,
                "paired": self.paired,
                "domains": self.totals(),
                "files": [asdict(f) for f in self.files],
                "skipped": self.skipped,
            },
        )

    @classmethod
    def read(cls, folder: str | Path) -> Manifest:
        folder = Path(folder)
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise UserError(f"{folder}: not a prepared dataset (no {MANIFEST_NAME}; run `umt prepare` first)")
        try:
            raw = json.loads(path.read_text())
            if raw.get("version") != MANIFEST_VERSION:
                raise ValueError(f"version {raw.get('version')} is not {MANIFEST_VERSION}")
            return cls(
                sample_rate=raw["sample_rate"],
                seed=raw["seed"],
                split_fractions=raw["split_fractions"],
                domains=list(raw["domains"]),
                paired=raw["paired"],
                files=[FileEntry(**f) for f in raw["files"]],
                skipped=raw["skipped"],
                root=folder,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: unreadable manifest ({exc})") from None


def assign_splits(groups: Iterable[str], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Deterministically put each group (a file, or a piece shared by domains) in a split.

    Groups are ordered by a seeded hash, so the order of one group relative to another
    never depends on which other groups exist; the first share goes to test, the next to
    val, the rest to train. With three or more groups every split with a non-zero
    fraction gets at least one.
    """
    ordered = sorted(set(groups), key=lambda g: hashlib.sha256(f"{seed}\0{g}".encode()).hexdigest())
    n = len(ordered)
    counts = {s: round(n * fractions[s]) for s in ("test", "val")}
    if n >= 3:
        counts = {s: max(c, 1 if fractions[s] > 0 else 0) for s, c in counts.items()}
    result: dict[str, str] = {}
    for i, group in enumerate(ordered):
        if i < counts["test"]:
            result[group] = "test"
        elif i < counts["test"] + counts["val"]:
            result[group] = "val"
        else:
            result[group] = "train"
    return result


def parse_split(text: str) -> dict[str, float]:
    """'80/10/10' -> {'train': 0.8, 'val': 0.1, 'test': 0.1}."""
    try:
        parts = [float(p) for p in text.split("/")]
    except ValueError:
        parts = []
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0 or parts[0] == 0:
        raise UserError(f"--split {text!r}: expected TRAIN/VAL/TEST percentages such as 80/10/10")
    total = sum(parts)
    return {s: p / total for s, p in zip(SPLITS, parts)}


PAIRING_NAME = "pairing.json"


def read_pairing(source: Path) -> set[str] | None:
    """Piece names of a paired corpus (SOURCE/pairing.json, as `umt make-bench` writes), else None."""
    path = source / PAIRING_NAME
    if not path.is_file():
        return None
    try:
        return {p["name"] for p in json.loads(path.read_text())["pieces"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: unreadable pairing file ({exc})") from None

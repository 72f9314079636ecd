"""Training batches: random fixed-length crops of one domain, as mu-law codes.

Item i of a CropDataset is a pure function of (seed, domain, i): the crop, the
augmented segment and its shift are drawn from a generator seeded with those three
numbers. So a batch does not depend on which DataLoader worker made it, a resumed
run sees exactly the batches it would have seen, and DDP ranks can split a global
batch by index.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from umt.audio import mu_law_encode
from umt.data.augment import pitch_shift_segment, random_segment
from umt.data.manifest import Manifest, pcm_to_float
from umt.errors import UserError


class CropDataset(Dataset):
    """Random crops of `domain` in `split`, files drawn in proportion to their duration.

    Returns {"inputs", "targets"}: int64 mu-law codes of shape [crop]. The input has the
    paper's pitch augmentation when `augment` is on; the target is always the clean crop.
    """

    def __init__(
        self,
        manifest: Manifest,
        domain: str,
        split: str = "train",
        crop: int = 12000,
        augment: bool = True,
        seed: int = 0,
    ):
        self.manifest = manifest
        self.entries = [e for e in manifest.entries(domain, split) if e.samples >= crop]
        if not self.entries:
            raise UserError(f"domain {domain!r}: no {split} file of at least {crop} samples in {manifest.root}")
        self.crop = crop
        self.augment = augment
        self.seed = seed
        self.domain_key = zlib.crc32(domain.encode())
        # Uniform over every possible crop position = files weighted by (length - crop + 1).
        self.ends = np.cumsum([e.samples - crop + 1 for e in self.entries])
        self._arrays: dict[int, np.ndarray] = {}  # memory maps, opened lazily in each worker

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.domain_key, index])
        position = int(rng.integers(self.ends[-1]))
        file = int(np.searchsorted(self.ends, position, side="right"))
        start = position - (int(self.ends[file - 1]) if file else 0)
        clean = pcm_to_float(self._array(file)[start : start + self.crop])
        noisy = (
            pitch_shift_segment(clean, self.manifest.sample_rate, random_segment(self.crop, rng))
            if self.augment
            else clean
        )
        return {"inputs": mu_law_encode(torch.from_numpy(noisy)), "targets": mu_law_encode(torch.from_numpy(clean))}

    def _array(self, file: int) -> np.ndarray:
        if file not in self._arrays:
            self._arrays[file] = self.manifest.load(self.entries[file])
        return self._arrays[file]


class StepSampler(Sampler[int]):
    """Indices for steps `start_step`, `start_step + 1`, ... of a run, this rank's share of each.

    Step s of a run with global batch G = batch_size * world_size covers indices
    s*G .. s*G + G - 1; rank r takes the r-th slice of batch_size of them.
    """

    def __init__(
        self, batch_size: int, start_step: int = 0, rank: int = 0, world_size: int = 1, steps: int | None = None
    ):
        self.batch_size, self.start_step, self.rank, self.world_size, self.steps = (
            batch_size,
            start_step,
            rank,
            world_size,
            steps,
        )

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while self.steps is None or step < self.start_step + self.steps:
            first = (step * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            step += 1

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("an endless StepSampler has no length")
        return self.steps * self.batch_size


def crop_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int = 0,
    start_step: int = 0,
    rank: int = 0,
    world_size: int = 1,
    steps: int | None = None,
) -> DataLoader:
    """Batches of items (dicts of [batch, ...] tensors) for consecutive training steps, endless
    unless `steps` is given."""
    sampler = StepSampler(batch_size, start_step, rank, world_size, steps)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


class MultiDomainCrops(Dataset):
    """Item i of every domain at once, each tensor of the items stacked over domains: [domains, ...].

    One DataLoader over this feeds a training step (a batch of each domain) with one set of
    worker processes, whatever the number of domains.
    """

    def __init__(self, domains: list[Dataset]):
        self.domains = domains

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        items = [d[index] for d in self.domains]
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}

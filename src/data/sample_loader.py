"""The classic per-sample pipeline: a `Dataset` that transforms one sample at a time, batched by a
PyTorch `DataLoader` with worker processes.

It is the right path for data that does not fit in memory, and the reference the whole-tensor
path (`TensorBatchLoader`) is measured against (`benchmarks/cpu.py`). The same batched transforms
are applied to one-image batches, so both paths compute the same values. The order of epoch `e`
depends only on the seed and `e` (the tensor path's order, on the CPU), and the loader's position in
an epoch is part of Lightning's checkpoints, so a resumed run takes the batches not taken yet.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

log = logging.getLogger(__name__)


class SampleDataset(Dataset):
    """`(transform(x[i]), y[i])` one index at a time."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.inputs, self.targets, self.transform = inputs, targets, transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.inputs[index]
        if self.transform is not None:
            x = self.transform(x.unsqueeze(0)).squeeze(0)
        return x, self.targets[index]


class EpochOrder(Sampler[int]):
    """Indices 0..n-1, shuffled by a generator seeded with (seed, epoch) alone, so that an epoch's order
    does not depend on how many epochs this process served before (a resumed run draws the same).
    Lightning calls `set_epoch` before every epoch; `skip` leaves out the first samples of the next pass."""

    def __init__(self, size: int, seed: int, shuffle: bool) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.skip = 0, 0

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        skip, self.skip = self.skip, 0
        return iter(order[skip:].tolist())


class ResumableDataLoader(DataLoader):
    """A `DataLoader` whose position in the epoch (batches handed out) Lightning stores in checkpoints
    (`state_dict` / `load_state_dict`); resumed, it serves the rest of that epoch. (Random draws made in
    worker processes, e.g. per-sample augmentation with `num_workers > 0`, follow the workers' own
    generators, which a resumed run starts afresh.)"""

    def __iter__(self) -> Iterator[Any]:
        epoch = self.sampler.epoch if isinstance(self.sampler, EpochOrder) else 0
        self._position = (epoch, self._resume_batches(epoch))
        for batch in super().__iter__():
            self._position = (epoch, self._position[1] + 1)  # counted before it is handed out
            yield batch

    def _resume_batches(self, epoch: int) -> int:
        resume, self._resume = getattr(self, "_resume", None), None
        if resume is None or resume[0] != epoch:
            return 0
        self.sampler.skip = resume[1] * int(self.batch_size or 1)
        return resume[1]

    def state_dict(self) -> dict[str, int]:
        epoch, taken = getattr(self, "_position", (0, 0))
        return {"epoch": epoch, "batches_taken": taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, taken = int(state["epoch"]), int(state["batches_taken"])
        if taken and not isinstance(self.sampler, EpochOrder):  # e.g. Lightning's DistributedSampler under DDP
            log.warning("this DataLoader's sampler cannot skip samples: the resumed epoch starts from its beginning.")
            return
        self._resume = (epoch, taken) if taken and taken < len(self) else None


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_num_workers() -> int:
    """One worker per spare core, at most 8 (0 on a single-core machine)."""
    return max(0, min(8, usable_cores() - 1))


def resumable_loader(
    dataset: Dataset,
    batch_size: int | None,
    shuffle: bool,
    num_workers: int | None = None,
    pin_memory: bool | None = None,
    seed: int = 0,
) -> ResumableDataLoader:
    """A `ResumableDataLoader` over any map-style `dataset`, in the order of `EpochOrder(seed)`; `None`
    settings are chosen for the machine: workers = spare cores, pinned memory when a GPU is present,
    persistent workers when there are any."""
    workers = default_num_workers() if num_workers is None else num_workers
    size = len(dataset)
    return ResumableDataLoader(
        dataset,
        batch_size=batch_size or size,
        sampler=EpochOrder(size, seed, shuffle),
        num_workers=workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def sample_loader(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int | None,
    shuffle: bool,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    num_workers: int | None = None,
    pin_memory: bool | None = None,
    seed: int = 0,
) -> ResumableDataLoader:
    """`resumable_loader` over `SampleDataset(inputs, targets, transform)`."""
    return resumable_loader(SampleDataset(inputs.cpu(), targets.cpu(), transform), batch_size, shuffle, num_workers,
                            pin_memory, seed)

"""The classic per-sample pipeline: a `Dataset` that transforms one sample at a time, batched by a
PyTorch `DataLoader` with worker processes.

It is the right path for data that does not fit in memory, and the reference the whole-tensor
path (`TensorBatchLoader`) is measured against (`benchmarks/cpu.py`). The same batched transforms
are applied to one-image batches, so both paths compute the same values.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset


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


def default_num_workers() -> int:
    """One worker per spare core, at most 8 (0 on a single-core machine)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores - 1))


def sample_loader(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int | None,
    shuffle: bool,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    num_workers: int | None = None,
    pin_memory: bool | None = None,
    seed: int = 0,
) -> DataLoader:
    """A `DataLoader` over `SampleDataset`; `None` settings are chosen for the machine: workers =
    spare cores, pinned memory when a GPU is present, persistent workers when there are any."""
    workers = default_num_workers() if num_workers is None else num_workers
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        SampleDataset(inputs.cpu(), targets.cpu(), transform),
        batch_size=batch_size or len(targets),
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=workers > 0,
        generator=generator,
    )

"""Batches cut from tensors held in memory, on the CPU or a GPU: no per-sample Python work.

A `TensorBatchLoader` shuffles with its own seeded generator on the tensors' device, slices
whole batches, and applies an optional batched transform (normalisation, augmentation). It is
what every in-memory data set is served with; Lightning accepts it like any DataLoader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


class TensorBatchLoader:
    """Iterate over `(inputs[idx], targets[idx])` batches of a split held as two tensors.

    - `batch_size=None` serves the whole split as one batch (full-batch gradient descent).
    - `steps_per_epoch` makes one "epoch" that many batches, starting a new (reshuffled) pass whenever one
      ends, so tiny data sets do per-epoch work (validation, logging) every N steps instead of every step;
      `limit_steps=N` cuts every epoch to at most N batches.
    - The order of epoch `e` depends only on `seed` and `e` (Lightning calls `set_epoch` through
      `sampler`, as for a `DistributedSampler`), so a run is reproducible and a resumed run continues it.
    - Under distributed training every rank draws the same order and takes its own share: equal for
      training (every rank takes the same number of steps), every sample once for evaluation.
    - `state_dict()` is the position in the epoch (in every checkpoint); after `load_state_dict()` the
      next iteration serves only the batches of that epoch not yet taken: a resumed run repeats and skips none.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int | None,
        shuffle: bool = False,
        drop_last: bool = False,
        steps_per_epoch: int | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
        limit_steps: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"inputs ({len(inputs)}) and targets ({len(targets)}) differ in length")
        if len(inputs) == 0:
            raise ValueError("cannot batch an empty split")
        self.inputs, self.targets = inputs, targets
        self.rank, self.world_size = rank, max(int(world_size), 1)
        # Each rank's share: equal for training (same step count on every rank), all samples otherwise.
        n = len(inputs) // self.world_size if shuffle else -(-(len(inputs) - rank) // self.world_size)
        self.share = n
        self.batch_size = n if batch_size is None else min(int(batch_size), n)
        # A full batch is the same batch in any order (on one process).
        self.shuffle = shuffle and (self.batch_size < n or self.world_size > 1)
        self.drop_last = drop_last
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        # Lightning calls `loader.sampler.set_epoch(epoch)` each epoch, as for a DataLoader's sampler.
        self.sampler, self.batch_sampler = self, None
        per_pass = n // self.batch_size if drop_last else -(-n // self.batch_size)
        self.batches_per_pass = max(per_pass, 1)
        self.steps_per_epoch = steps_per_epoch or self.batches_per_pass
        if limit_steps is not None:
            self.steps_per_epoch = max(min(self.steps_per_epoch, int(limit_steps)), 1)
        self._position = (0, 0)  # (epoch being served, batches of it handed out)
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches already taken) after load_state_dict

    def __len__(self) -> int:
        return self.steps_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch `epoch`'s order."""
        self.epoch = epoch
        if self._resume_at is not None and self._resume_at[0] != epoch:
            self._resume_at = None  # a restored position belongs to its own epoch only

    def state_dict(self) -> dict[str, int]:
        """The epoch being served and how many of its batches were handed out."""
        epoch, taken = self._position
        return {"epoch": epoch, "batches_taken": taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue where `state` was taken: the rest of its epoch, or the next epoch if it was complete."""
        epoch, taken = int(state["epoch"]), int(state["batches_taken"])
        if taken >= self.steps_per_epoch:
            epoch, taken = epoch + 1, 0
        self.epoch, self._position = epoch, (epoch, taken)
        self._resume_at = (epoch, taken) if taken else None

    def _pass_indices(self, generator: torch.Generator | None) -> Iterator[torch.Tensor | slice]:
        bs, rank, world = self.batch_size, self.rank, self.world_size
        if generator is not None:
            order = torch.randperm(len(self.inputs), generator=generator, device=generator.device)
            order = order[rank::world][: self.share] if world > 1 else order
        elif world > 1:
            order = torch.arange(rank, len(self.inputs), world, device=self.inputs.device)
        else:
            order = None
        for b in range(self.batches_per_pass):
            start = b * bs
            yield order[start : start + bs] if order is not None else slice(start, start + bs)

    def __iter__(self) -> Iterator[Batch]:
        generator = None
        if self.shuffle:
            generator = torch.Generator(device=self.inputs.device)
            generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        epoch, self.epoch = self.epoch, self.epoch + 1
        skip = self._resume_at[1] if self._resume_at is not None and self._resume_at[0] == epoch else 0
        self._resume_at = None
        self._position = (epoch, skip)
        steps = 0
        while steps < self.steps_per_epoch:
            for idx in self._pass_indices(generator):  # skipped batches still draw their order: same sequence
                steps += 1
                if steps > skip:
                    x, y = _take(self.inputs, idx), _take(self.targets, idx)
                    self._position = (epoch, steps)  # counted before it is handed out: a checkpoint sees it taken
                    yield (self.transform(x) if self.transform else x), y
                if steps == self.steps_per_epoch:
                    return


def _take(tensor: torch.Tensor, idx: torch.Tensor | slice) -> torch.Tensor:
    """`tensor[idx]` along the first dimension. A slice is a view; a shuffled index is gathered with
    `index_select`, many times faster on the CPU than advanced indexing for image tensors (which is
    kept for channels-last tensors: it returns channels-last batches, index_select does not)."""
    if isinstance(idx, slice) or not tensor.is_contiguous():
        return tensor[idx]
    return torch.index_select(tensor, 0, idx)

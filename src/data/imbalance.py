"""Class imbalance on the data side, loaded only when a data config chooses it (src/builders.py):

- `data.imbalance_ratio=R`: a long-tailed training split, the standard protocol of the long-tailed
  benchmarks (CIFAR-10-LT, ...): class c keeps `n_max * R ** (-c / (C - 1))` of its training samples
  (class 0 all of them, the last class `n_max / R`), chosen at random from `data.split_seed`. Validation
  (carved before) and test stay as they are: balanced for the built-in sets.
- `data.sampler=balanced`: training batches that draw the classes uniformly (`BalancedBatchLoader`).

`imbalanced_data_class(cls)` is an in-memory data module class with both settings, under the base's name.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch

from src.data.in_memory import InMemoryDataModule
from src.data.splits import Split
from src.data.tensor_loader import TensorBatchLoader
from src.errors import UserError, require

log = logging.getLogger(__name__)
SAMPLERS = ("random", "balanced")


def check_settings(imbalance_ratio: Any, sampler: Any) -> None:
    require(imbalance_ratio is None or (isinstance(imbalance_ratio, (int, float)) and not isinstance(
        imbalance_ratio, bool) and imbalance_ratio >= 1), f"data.imbalance_ratio must be a number of at least 1 "
            f"(the largest class's training samples over the smallest's, e.g. 100) or null, got {imbalance_ratio!r}.")
    require(sampler in SAMPLERS, f"data.sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}.")


def long_tailed_counts(counts: list[int], ratio: float) -> list[int]:
    """Samples kept per class: int(n_max * ratio ** (-c / (C - 1))), at most the class's own count, at least 1."""
    n_max, last = max(counts), max(len(counts) - 1, 1)
    return [min(n, max(1, int(n_max * float(ratio) ** (-c / last)))) if n else 0 for c, n in enumerate(counts)]


def long_tailed(split: Split, num_classes: int, ratio: float, seed: int) -> Split:
    """`split` with each class cut to its long-tailed count (random samples of it, from `seed`), in its order."""
    targets = split.targets.cpu()
    counts = torch.bincount(targets, minlength=num_classes).tolist()
    generator = torch.Generator().manual_seed(int(seed))
    keep = []
    for c, n in enumerate(long_tailed_counts(counts, ratio)):
        members = torch.nonzero(targets == c).flatten()
        keep.append(members[torch.randperm(len(members), generator=generator)[:n]])
    return split.subset(torch.cat(keep).sort().values)


class BalancedBatchLoader(TensorBatchLoader):
    """A training `TensorBatchLoader` whose batches draw the classes uniformly: each pass over the epoch
    serves as many samples as the plain loader (the split's size, its share per rank), every class the
    same number of times (one more for a few, at random, when the classes do not divide it), each class's
    samples in a fresh random order, repeated as often as the class needs (rare ones) or cut short (common
    ones), in a shuffled order of classes.

    Under distributed training every rank serves the same number of batches, and each class's samples are
    dealt out to the ranks for each pass (a random permutation, every rank its own slice): no sample is
    served to two ranks in one pass. The order of a pass depends only on the loader's seed, epoch and pass,
    so a resumed run continues it exactly (the position in the epoch is the base loader's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        targets = self.targets.cpu().long()
        self.members = [torch.nonzero(targets == c).flatten() for c in torch.unique(targets).tolist()]
        fewest = min(len(m) for m in self.members)
        require(fewest >= self.world_size, f"data.sampler=balanced deals each class's training samples out to the "
                f"{self.world_size} processes, but one class has only {fewest}; use fewer devices or more data.")
        self.shuffle = True  # even a full batch on one process: the classes are drawn anew every pass

    def _pass_indices(self, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
        # One draw from the shared generator (the same on every rank) seeds this pass: its shared part (the
        # deal of each class to the ranks, the class of each draw) and then each rank's own draws.
        pass_seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device).item())
        shared = torch.Generator().manual_seed(pass_seed)
        own = torch.Generator().manual_seed(pass_seed + 1 + self.rank)
        n, classes = self.share, len(self.members)
        pools = [m[torch.randperm(len(m), generator=shared)][self.rank :: self.world_size] for m in self.members]
        drawn = torch.cat([torch.arange(classes).repeat(n // classes), torch.randperm(classes, generator=shared)[
            : n % classes]])[torch.randperm(n, generator=shared)]
        order = torch.empty(n, dtype=torch.long)
        for c, pool in enumerate(pools):
            where = torch.nonzero(drawn == c).flatten()
            rounds = -(-len(where) // len(pool))
            picks = [pool[torch.randperm(len(pool), generator=own)] for _ in range(rounds)]
            order[where] = torch.cat(picks)[: len(where)] if picks else order[where]
        order = order.to(self.inputs.device)
        for b in range(self.batches_per_pass):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]


class ImbalancedData:
    """Data-module side: `imbalance_ratio` cuts the training split (after validation is carved, before the
    encodings are fitted on it), `sampler=balanced` serves it through `BalancedBatchLoader`."""

    def __init__(self, *, imbalance_ratio: float | None = None, sampler: str = "random", **kwargs: Any) -> None:
        check_settings(imbalance_ratio, sampler)
        super().__init__(**kwargs)
        self.imbalance_ratio, self.sampler = imbalance_ratio, sampler

    def encode_splits(self, train: Split, val: Split, test: Split) -> tuple[Split, Split, Split]:
        if self.imbalance_ratio is not None:
            before = len(train)
            train = long_tailed(train, self.num_classes, self.imbalance_ratio, self.split_seed)
            counts = torch.bincount(train.targets.cpu(), minlength=self.num_classes).tolist()
            log.info("data.imbalance_ratio=%g: %d of %d training samples kept, per class %s", self.imbalance_ratio,
                     len(train), before, counts)
        return super().encode_splits(train, val, test)

    def _loader(self, split: Split | None, shuffle: bool = False, steps_per_epoch: int | None = None,
                transform: Any = None, limit_steps: int | None = None):
        if not (shuffle and self.sampler == "balanced"):
            return super()._loader(split, shuffle, steps_per_epoch, transform, limit_steps)
        require(self.loader == "tensor", "data.sampler=balanced draws whole-tensor batches; set data.loader=tensor "
                                         "(or data.sampler=random to keep the per-sample DataLoader).")
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        seed = int(os.environ.get("PL_GLOBAL_SEED", self.split_seed))  # as the plain loader's (in_memory.py)
        return BalancedBatchLoader(split.inputs, split.targets, self.batch_size, shuffle=True, rank=rank,
                                   world_size=world, steps_per_epoch=steps_per_epoch,
                                   transform=transform or self.transform, seed=seed, limit_steps=limit_steps)


@functools.cache
def imbalanced_data_class(base: type) -> type:
    """`base` (an in-memory data module class, maybe a K-step variant) with `imbalance_ratio` and `sampler`.
    It keeps the base's name, so checkpoints store its data state as the base's."""
    if not issubclass(base, InMemoryDataModule):
        raise UserError(f"data.imbalance_ratio and data.sampler work on data sets held in memory; {base.__name__} "
                        "streams its samples: leave them at null and random.")
    return type(base.__name__, (ImbalancedData, base), {"__qualname__": base.__qualname__,
                                                       "__module__": base.__module__})

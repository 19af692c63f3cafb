"""`data=hf data.streaming=true`: an image set read through the `datasets` library's streaming (an
`IterableDataset`), decoded batch by batch, never cached whole on disk or in memory.

The splits are those of the cached path (`src/data/hf_dataset.py`): one pass over the label column
only (no image is decoded) gives every row's class, and the same stratified carving (test, validation,
folds, `data.split_seed`) picks the rows of each split by their place in the stream. Images are decoded
by the same rule (`src/data/image_files.py`), normalised with `data.mean`/`data.std`, or else with
statistics fitted on the first `data.stats_samples` training images of the stream, and the training
batches get the same augmentations. Training batches are shuffled within a buffer of
`data.shuffle_buffer` images: a training split that fits in the buffer is served in exactly the order
of the cached path (the same seeded permutation), so both give the same model.

A streamed epoch cannot be taken up part-way without reading the stream again: a checkpoint saved
mid-epoch is refused for resuming (end-of-epoch checkpoints such as `last.ckpt` resume exactly).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from src.data.splits import Split
from src.errors import UserError, require


class StreamedSplits:
    """The streamed set's splits: each one's rows (places in the stream), classes and names."""

    def __init__(self, module) -> None:
        from src.data.hf_source import open_dataset, own_splits, plan_splits, read_rows
        from src.data.splits import stratified_fold, stratified_split

        require(module.is_image, f"data.streaming=true reads image sets; {module.path} is a table (no Image "
                                 "column), which is read whole: drop data.streaming.")
        require(module.steps_per_epoch is None, "data.steps_per_epoch needs the cached path; drop it, or set "
                                                "data.streaming=false.")
        self.module = module
        self.dataset = open_dataset(module.path, module.config_name, streaming=True)
        train, val, test = own_splits(self.dataset, module.path, *module.split_args)
        if module.num_folds and val:
            val = None
        self.rows = read_rows(self.dataset, module.columns, [s for s in (train, val, test) if s])
        train_idx, val_idx, test_idx = plan_splits(self.rows, train, val, test, module.test_fraction,
                                                   module.split_seed, module.class_names,
                                                   f"the {train} split of {module.path}")
        if val_idx is None:  # carved from the training rows as InMemoryDataModule.setup carves it
            targets = torch.from_numpy(self.rows.targets[train_idx])
            keep, held = stratified_fold(targets, module.num_folds, module.fold, module.split_seed) \
                if module.num_folds else stratified_split(targets, module.val_fraction, module.split_seed)
            train_idx, val_idx = train_idx[np.asarray(keep)], train_idx[np.asarray(held)]
        self.order = {"train": train_idx, "val": val_idx, "test": test_idx}
        for role, at in self.order.items():
            require(len(at) > 0, f"the {module.name} {role} split is empty; use a smaller val_fraction.")

    def split(self, role: str) -> Split:
        """Classes and names of a split; its inputs are streamed, so the tensor of inputs is empty (N, 0)."""
        at = self.order[role]
        return Split(torch.empty(len(at), 0, dtype=torch.uint8), torch.from_numpy(self.rows.targets[at]),
                     [self.rows.names[i] for i in at.tolist()])

    def images(self, role: str) -> Iterator[tuple[int, np.ndarray]]:
        """(place in the order of the split, uint8 image (C, H, W)) of each row of `role`, in stream order."""
        from datasets import Image

        from src.data.image_files import read_image

        module, at = self.module, self.order[role]
        slot = {int(p): i for i, p in enumerate(at.tolist())}
        key = module.columns.image
        for split, start, end in self.rows.parts:
            if not ((at >= start) & (at < end)).any():  # a split none of whose rows this role takes
                continue
            raw = self.dataset[split].select_columns([key]).cast_column(key, Image(decode=False))
            for position, row in enumerate(raw, start=start):
                if position in slot:
                    item = row[key]
                    source = io.BytesIO(item["bytes"]) if item.get("bytes") else item.get("path")
                    yield slot[position], read_image(source, module.channels, module.size)

    def fit_normalisation(self):
        """Normalize with data.mean/std, or statistics of the first data.stats_samples training images."""
        from src.data.batch_transforms import Normalize
        from src.data.image_datasets import channel_stats

        module = self.module
        if module.mean is not None and module.std is not None:
            return Normalize(module.mean, module.std)
        first = []
        for _, image in self.images("train"):
            first.append(image)
            if len(first) >= module.stats_samples:
                break
        mean, std = channel_stats(torch.from_numpy(np.stack(first)))
        return Normalize(module.mean or mean, module.std or std)


class StreamBatchLoader:
    """Batches (float inputs, classes) of one streamed split, for Lightning (it has `len` and `set_epoch`)."""

    def __init__(self, splits: StreamedSplits, role: str, batch_size: int | None, shuffle: bool, seed: int,
                 buffer: int, transform, limit_steps: int | None = None) -> None:
        self.splits, self.role, self.transform, self.seed, self.buffer = splits, role, transform, seed, buffer
        self.targets = torch.from_numpy(splits.rows.targets[splits.order[role]])
        n = len(self.targets)
        self.batch_size = n if batch_size is None else min(int(batch_size), n)
        self.shuffle = shuffle and self.batch_size < n  # a full batch is the same batch in any order
        self.steps = -(-n // self.batch_size)
        if limit_steps is not None:
            self.steps = max(min(self.steps, int(limit_steps)), 1)
        self.epoch, self._position = 0, (0, 0)
        self.sampler, self.batch_sampler = self, None

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        epoch, taken = self._position
        return {"epoch": epoch, "batches_taken": taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, taken = int(state["epoch"]), int(state["batches_taken"])
        if 0 < taken < self.steps:
            raise UserError(f"this checkpoint was saved {taken} of {self.steps} batches into epoch {epoch} of a "
                            "streamed run, which cannot resume part-way; resume from an end-of-epoch checkpoint "
                            "(last.ckpt), or train with data.streaming=false.")
        self.epoch = epoch + 1 if taken else epoch

    def _order(self, generator: torch.Generator | None) -> Iterator[tuple[int, np.ndarray]]:
        """The split's images in serving order: stream order, the cached path's permutation when the split fits
        the buffer, else a buffer shuffle."""
        stream = self.splits.images(self.role)
        n = len(self.targets)
        if generator is None:
            yield from stream
        elif n <= self.buffer:
            held: list[Any] = [None] * n
            for slot, image in stream:
                held[slot] = image
            for slot in torch.randperm(n, generator=generator).tolist():
                yield slot, held[slot]
        else:
            pool: list[tuple[int, np.ndarray]] = []
            for item in stream:
                if len(pool) < self.buffer:
                    pool.append(item)
                    continue
                j = int(torch.randint(len(pool), (1,), generator=generator))
                yield pool[j]
                pool[j] = item
            for j in torch.randperm(len(pool), generator=generator).tolist():
                yield pool[j]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = None
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        epoch, self.epoch = self.epoch, self.epoch + 1
        self._position, steps, batch = (epoch, 0), 0, []
        for item in self._order(generator):
            batch.append(item)
            if len(batch) == self.batch_size:
                steps += 1
                self._position = (epoch, steps)
                yield self._collate(batch)
                batch = []
                if steps == self.steps:
                    return
        if batch:
            self._position = (epoch, steps + 1)
            yield self._collate(batch)

    def _collate(self, batch: list[tuple[int, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
        slots = torch.as_tensor([slot for slot, _ in batch])
        x = torch.from_numpy(np.stack([image for _, image in batch]))
        return (self.transform(x) if self.transform else x), self.targets[slots]

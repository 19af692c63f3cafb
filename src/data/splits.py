"""A data set's splits held as tensors, and the reproducible ways validation is carved from training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from sklearn.model_selection import StratifiedKFold, train_test_split


@dataclass
class Split:
    """One split of a data set: inputs (N, *input_shape) and integer class targets (N,); optionally
    each sample's name (an image's file, a table's row), which reports such as `predictions.csv` show."""

    inputs: torch.Tensor
    targets: torch.Tensor
    names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: Sequence[int] | torch.Tensor) -> Split:
        index = torch.as_tensor(index, dtype=torch.long)
        names = [self.names[i] for i in index.tolist()] if self.names is not None else None
        return Split(self.inputs[index], self.targets[index], names)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.inputs.to(device), self.targets.to(device), self.names)


def stratified_split(targets: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (keep, held_out) with `fraction` of every class held out, reproducible from `seed`."""
    index = torch.arange(len(targets)).numpy()
    keep, held = train_test_split(index, test_size=fraction, random_state=seed, stratify=targets.numpy())
    return torch.as_tensor(keep), torch.as_tensor(held)


def stratified_fold(targets: torch.Tensor, num_folds: int, fold: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, validation) of fold `fold` of a stratified, shuffled `num_folds`-fold split."""
    folds = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    keep, held = list(folds.split(torch.zeros(len(targets)).numpy(), targets.numpy()))[fold]
    return torch.as_tensor(keep), torch.as_tensor(held)


def fits_on_device(data_bytes: int, free_bytes: int, max_fraction: float | None) -> bool:
    """Whether a data set of `data_bytes` should live on an accelerator with `free_bytes` free:
    yes when it takes at most `max_fraction` of the free memory (`None`: always)."""
    return max_fraction is None or data_bytes <= max_fraction * free_bytes

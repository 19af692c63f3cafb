"""CIFAR-10 and CIFAR-100: 32x32 colour images, 50,000 for training and 10,000 for testing.

torchvision reads the python pickle batches from `<data_dir>/cifar-10-batches-py/` (or
`cifar-100-python/`); an archive already in `data_dir` is extracted first. CIFAR-100 uses the 100
fine labels.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import datasets

from src.data.image_datasets import TorchvisionImageDataModule, extract_if_needed

__all__ = ["CIFAR10DataModule", "CIFAR100DataModule"]


class CIFAR10DataModule(TorchvisionImageDataModule):
    """CIFAR-10 through `torchvision.datasets.CIFAR10`; class names from `batches.meta`."""

    title = "CIFAR-10"
    torchvision_class = "CIFAR10"

    def dataset_class(self):
        return getattr(datasets, self.torchvision_class)

    def prepare_files(self, root: Path) -> None:
        cls = self.dataset_class()
        extract_if_needed(root / cls.filename, root / cls.base_folder)

    def open_split(self, root: Path, train: bool, download: bool = False):
        return self.dataset_class()(str(root), train=train, download=download)

    def to_tensors(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # stored HWC
        return images, torch.as_tensor(dataset.targets, dtype=torch.long)

    def expected_files(self, root: Path) -> tuple[str, Path]:
        cls = self.dataset_class()
        return f"{cls.filename} (or its extracted folder {cls.base_folder}/)", root


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 with its 100 fine classes; class names from `meta` (`fine_label_names`)."""

    title = "CIFAR-100"
    torchvision_class = "CIFAR100"

"""STL-10: 96x96 colour images of 10 classes, 5,000 labelled for training and 8,000 for testing.

torchvision reads the binary files from `<data_dir>/stl10_binary/` (an archive already in
`data_dir` is extracted first). Only the labelled splits are used; torchvision still checks that the
whole archive is there (the 100,000 unlabelled images included).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import STL10

from src.data.image_datasets import TorchvisionImageDataModule, extract_if_needed

__all__ = ["STL10DataModule"]


class STL10DataModule(TorchvisionImageDataModule):
    """STL-10's 'train' and 'test' splits through `torchvision.datasets.STL10`."""

    title = "STL-10"

    def prepare_files(self, root: Path) -> None:
        extract_if_needed(root / STL10.filename, root / STL10.base_folder)

    def open_split(self, root: Path, train: bool, download: bool = False):
        return STL10(str(root), split="train" if train else "test", download=download)

    def to_tensors(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(dataset.data).contiguous()  # (N, C, H, W), transposed by torchvision
        return images, torch.as_tensor(dataset.labels, dtype=torch.long)

    def expected_files(self, root: Path) -> tuple[str, Path]:
        return "stl10_binary.tar.gz (or its extracted folder stl10_binary/)", root

"""SVHN (Street View House Numbers), cropped digits: 32x32 colour, 73,257 train and 26,032 test images.

torchvision reads `train_32x32.mat` and `test_32x32.mat` (MATLAB files, read with scipy) from
`data_dir`; label 10 in the files is digit 0. The "extra" split (531,131 images) is not used.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import SVHN

from src.data.image_datasets import TorchvisionImageDataModule

__all__ = ["SVHNDataModule"]


class SVHNDataModule(TorchvisionImageDataModule):
    """SVHN through `torchvision.datasets.SVHN`; class names "0" ... "9"."""

    title = "SVHN"

    def open_split(self, root: Path, train: bool, download: bool = False):
        return SVHN(str(root), split="train" if train else "test", download=download)

    def to_tensors(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(dataset.data).contiguous()  # torchvision already made it (N, C, H, W)
        return images, torch.as_tensor(dataset.labels, dtype=torch.long)

    def expected_files(self, root: Path) -> tuple[str, Path]:
        return "train_32x32.mat and test_32x32.mat", root

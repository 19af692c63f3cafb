"""MNIST and Fashion-MNIST: 28x28 grey images, 60,000 for training and 10,000 for testing.

torchvision reads the four IDX files *unzipped* from `<data_dir>/<MNIST|FashionMNIST>/raw/`.
`prepare_data()` (once per node) unzips the `.gz` files found there or in `system_dir` (Debian's
`dataset-fashion-mnist` package installs Fashion-MNIST's in /usr/share/datasets/fashion-mnist) into
that folder, so the real data loads offline.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torchvision import datasets

from src.data.image_datasets import TorchvisionImageDataModule

__all__ = ["MNISTDataModule", "FashionMNISTDataModule", "IDX_FILES"]

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def copy_to(source: Path, target: Path) -> None:
    """Write `source` (unzipped if it is a `.gz`) to `target`, atomically: a half-written file never takes
    the target's name, and processes writing at once (nodes sharing a file system) each use their own."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    opener = gzip.open if source.suffix == ".gz" else open
    try:
        with opener(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


class MNISTDataModule(TorchvisionImageDataModule):
    """MNIST digits through `torchvision.datasets.MNIST`; class names "0 - zero" ... "9 - nine"."""

    title = "MNIST"
    torchvision_class = "MNIST"

    def __init__(self, system_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.system_dir = system_dir

    def raw_folder(self, root: Path) -> Path:
        return root / self.torchvision_class / "raw"  # where torchvision looks

    def prepare_files(self, root: Path) -> None:
        raw = self.raw_folder(root)
        sources = [raw] + ([Path(self.system_dir)] if self.system_dir else [])
        for name in IDX_FILES:
            target = raw / name
            if target.is_file():
                continue
            for folder in sources:
                if (folder / f"{name}.gz").is_file():
                    raw.mkdir(parents=True, exist_ok=True)
                    copy_to(folder / f"{name}.gz", target)
                    break
                if folder != raw and (folder / name).is_file():
                    raw.mkdir(parents=True, exist_ok=True)
                    copy_to(folder / name, target)
                    break

    def open_split(self, root: Path, train: bool, download: bool = False):
        return getattr(datasets, self.torchvision_class)(str(root), train=train, download=download)

    def to_tensors(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        return dataset.data.unsqueeze(1).contiguous(), dataset.targets.long()

    def expected_files(self, root: Path) -> tuple[str, Path]:
        names = [f"{name}.gz" for name in IDX_FILES]
        return f"{', '.join(names[:-1])} and {names[-1]} (or the same files unzipped)", self.raw_folder(root)


class FashionMNISTDataModule(MNISTDataModule):
    """Zalando's Fashion-MNIST (T-shirt/top, Trouser, ... Ankle boot) in MNIST's format."""

    title = "Fashion-MNIST"
    torchvision_class = "FashionMNIST"

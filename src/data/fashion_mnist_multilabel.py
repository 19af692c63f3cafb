"""`data=fashion_mnist_multilabel`: 2x2 mosaics of Fashion-MNIST items (1x56x56 grey); a mosaic's labels are the
set of the classes of its four items (one to four labels of ten).

The mosaics are fixed by `data.split_seed`: `train_mosaics` mosaics drawn from the official training images
(validation: `val_fraction` of them) and `test_mosaics` from the official test images only, so no test item
is ever seen in training. The files are those of `data=fashion_mnist` (src/data/mnist.py), read offline from
Debian's dataset-fashion-mnist package where it is installed.
"""

from __future__ import annotations

from typing import Any

import torch

from src.data.mnist import FashionMNISTDataModule
from src.data.multilabel_folds import LabelSetFolds
from src.data.splits import Split
from src.errors import require


def mosaics(images: torch.Tensor, labels: torch.Tensor, count: int, num_classes: int,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` 2x2 mosaics of uint8 images (N, C, H, W) drawn with `generator`: ((count, C, 2H, 2W), (count,
    num_classes) 0/1 float targets: the classes present)."""
    picks = torch.randint(len(images), (count, 4), generator=generator)
    tiles = images[picks]                                     # (count, 4, C, H, W)
    top = torch.cat([tiles[:, 0], tiles[:, 1]], dim=-1)
    bottom = torch.cat([tiles[:, 2], tiles[:, 3]], dim=-1)
    targets = torch.zeros(count, num_classes).scatter_(1, labels[picks], 1.0)
    return torch.cat([top, bottom], dim=-2).contiguous(), targets


class FashionMNISTMosaicDataModule(LabelSetFolds, FashionMNISTDataModule):
    """Fashion-MNIST mosaics with several labels each (module docstring)."""

    title = "Fashion-MNIST"

    def __init__(self, train_mosaics: int = 30000, test_mosaics: int = 5000, task_model: str | None = None,
                 **kwargs: Any) -> None:
        for key, value in (("train_mosaics", train_mosaics), ("test_mosaics", test_mosaics)):
            require(isinstance(value, int) and value >= 10, f"data.{key} must be an integer of at least 10, got "
                                                            f"{value!r}.")
        super().__init__(**kwargs)
        self.train_mosaics, self.test_mosaics = train_mosaics, test_mosaics

    def load(self) -> tuple[Split, Split, Split, list[str]]:
        train_items, _, test_items, names = super().load()
        generator = torch.Generator().manual_seed(int(self.split_seed))
        train = Split(*mosaics(train_items.inputs, train_items.targets, self.train_mosaics, len(names), generator))
        test = Split(*mosaics(test_items.inputs, test_items.targets, self.test_mosaics, len(names), generator))
        if self.fold_count:  # out-of-fold predictions name a mosaic by its place among the training mosaics
            train = Split(train.inputs, train.targets, [str(i) for i in range(len(train))])
        keep, held = self.carve_validation(len(train))
        return train.subset(keep), train.subset(held), test, names

"""Synthetic image data: uniform random uint8 pixels and random labels, of any shape and size.

For throughput benchmarks (pixel values do not change how fast a conv net runs, so CIFAR- or
ImageNet-shaped random data measure speed without the real files) and for tests. Nothing can be
learnt from it: accuracy stays at chance. The images are generated on the CPU from `seed`
(reproducible), then held like any in-memory data set (on the GPU with `data.device: null` there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from src.data.batch_transforms import Normalize
from src.data.in_memory import InMemoryDataModule
from src.data.splits import Split
from src.errors import require

__all__ = ["RandomImagesDataModule", "UNIFORM_UINT8_MEAN", "UNIFORM_UINT8_STD"]

# Mean and std of a pixel drawn uniformly from 0..255, scaled to [0, 1].
UNIFORM_UINT8_MEAN = 127.5 / 255.0
UNIFORM_UINT8_STD = math.sqrt((256**2 - 1) / 12.0) / 255.0


class RandomImagesDataModule(InMemoryDataModule):
    """`num_train` training and `num_test` test images of `input_shape` (validation carved from the
    training ones as usual); `mean`/`std` null = the exact statistics of uniform uint8 pixels."""

    def __init__(
        self,
        num_train: int = 50_000,
        num_test: int = 10_000,
        seed: int = 0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        require(
            isinstance(num_train, int) and isinstance(num_test, int) and num_train > 0 and num_test > 0,
            f"data.num_train and data.num_test must be positive integers, got {num_train!r} and {num_test!r}.",
        )
        require(len(self.input_shape) == 3, f"data.input_shape must be [C, H, W], got {list(self.input_shape)}.")
        channels = self.input_shape[0]
        for key, value in (("mean", mean), ("std", std)):
            require(value is None or len(value) == channels,
                    f"data.{key} must have one value per channel ({channels}), got {value}.")
        self.num_train, self.num_test, self.seed = num_train, num_test, seed
        self.mean = [UNIFORM_UINT8_MEAN] * channels if mean is None else [float(m) for m in mean]
        self.std = [UNIFORM_UINT8_STD] * channels if std is None else [float(s) for s in std]

    def load(self) -> tuple[Split, None, Split, list[str]]:
        generator = torch.Generator().manual_seed(self.seed)

        def split(n: int) -> Split:
            images = torch.randint(0, 256, (n, *self.input_shape), generator=generator, dtype=torch.uint8)
            return Split(images, torch.randint(0, self.num_classes, (n,), generator=generator))

        return split(self.num_train), None, split(self.num_test), [str(i) for i in range(self.num_classes)]

    def make_transform(self, train: Split) -> Normalize:
        return Normalize(self.mean, self.std)

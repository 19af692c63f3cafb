"""AlexNet (Krizhevsky et al., 2012) adapted to small images (28 to 96 px).

The five convolutions keep AlexNet's widths (64-192-384-256-256) and its three max-pools, but use
3x3 kernels with stride 1 instead of 11x11/4 and 5x5, which would shrink a 32 px image to nothing.
A 2x2 adaptive average pool then fixes the classifier's input at 256*2*2 = 1024 features whatever
the image size, and the classifier (dropout, ReLU) is narrower than the original 4096 units
(`hidden`, default 1024), which keeps the net at about 4 million parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from src.models.nets.common import as_chw, feature_shape

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Module):
    """Five 3x3 conv layers with three 2x2 max-pools, adaptive pooling to 2x2, three fc layers."""

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, dropout: float = 0.5, hidden: int = 1024
    ) -> None:
        super().__init__()
        channels = as_chw(input_shape, "alexnet")[0]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 192, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        feature_shape(self.features, input_shape, "alexnet")  # raises InputShapeError below 8x8
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(256 * 2 * 2, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def alexnet(
    input_shape: Sequence[int], num_classes: int, dropout: float = 0.5, hidden: int = 1024
) -> AlexNet:
    """AlexNet for small images, with `hidden` units in each of its two hidden fc layers."""
    return AlexNet(input_shape, num_classes, dropout=dropout, hidden=hidden)

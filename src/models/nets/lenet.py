"""LeNet-5 (LeCun et al., 1998) for small grey or colour images.

conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> fc 120 -> fc 84 -> fc num_classes. The first
convolution pads by 2 so that 28 px MNIST-style images give the classic 16x5x5 map that the
original got from 32 px; larger images simply give a larger map, whose flattened size is measured
when the net is built. Pooling is max-pooling; the activation is ReLU (default) or the original tanh.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from src.errors import UserError
from src.models.nets.common import as_chw, flat_features

__all__ = ["LeNet5", "lenet5"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class LeNet5(nn.Module):
    """Two conv + max-pool stages and three fully-connected layers (120, 84, num_classes)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, activation: str = "relu") -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise UserError(f"lenet5 activation must be one of {sorted(_ACTIVATIONS)}, not {activation!r}.")
        act = _ACTIVATIONS[activation]
        channels = as_chw(input_shape, "lenet5")[0]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2),
            act(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            act(),
            nn.MaxPool2d(2),
        )
        self.flat_features = flat_features(self.features, input_shape, "lenet5")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.flat_features, 120),
            act(),
            nn.Linear(120, 84),
            act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def lenet5(input_shape: Sequence[int], num_classes: int, activation: str = "relu") -> LeNet5:
    """LeNet-5 with `activation` "relu" or "tanh"; needs images of at least 12x12 pixels."""
    return LeNet5(input_shape, num_classes, activation=activation)

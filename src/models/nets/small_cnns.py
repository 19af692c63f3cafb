"""The course's own small CNNs: a few conv layers, then a flattened fully-connected head.

Each net is a `features` stack (convolutions and poolings) followed by a `classifier` that
flattens the feature map. The flattened size depends on the image size, so it is measured at
build time and kept as the net's `flat_features`; images too small for the convolutions raise
InputShapeError when the net is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from src.models.nets.common import as_chw, flat_features

__all__ = [
    "Notes0CNN",
    "Notes1CNN",
    "Notes2SimpleCNN",
    "Notes4DropoutCNN",
    "notes0_cnn",
    "notes1_cnn",
    "notes2_simple_cnn",
    "notes4_dropout_cnn",
]


class _FeaturesThenClassifier(nn.Module):
    """Base class: `features` (conv stack) then `classifier` (flatten + fully-connected layers)."""

    features: nn.Sequential
    classifier: nn.Sequential
    flat_features: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class Notes0CNN(_FeaturesThenClassifier):
    """conv3x3(32) - conv3x3(32) - maxpool - fc(hidden) - fc; 32*14*14 = 6272 features on 32 px."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        channels = as_chw(input_shape, "notes0_cnn")[0]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.flat_features = flat_features(self.features, input_shape, "notes0_cnn")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.flat_features, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )


class Notes1CNN(_FeaturesThenClassifier):
    """Three 5x5 convs (16-32-64) with two max-pools, fc(100), fc; 64*3*3 = 576 features on 28 px."""

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        channels = as_chw(input_shape, "notes1_cnn")[0]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 5),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.flat_features = flat_features(self.features, input_shape, "notes1_cnn")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.flat_features, 100),
            nn.ReLU(inplace=True),
            nn.Linear(100, num_classes),
        )


class Notes2SimpleCNN(_FeaturesThenClassifier):
    """Two padded 3x3 conv + max-pool stages (32, 64), fc(512), fc; 64*8*8 = 4096 features on 32 px."""

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        channels = as_chw(input_shape, "notes2_simple_cnn")[0]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.flat_features = flat_features(self.features, input_shape, "notes2_simple_cnn")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.flat_features, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )


class Notes4DropoutCNN(_FeaturesThenClassifier):
    """Two conv + max-pool stages with dropout after each, fc(128), dropout, fc.

    On 1x28x28 with 10 classes it has 225,546 parameters (first_kernel=5; 1600 flat features)
    or 225,034 (first_kernel=3).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, first_kernel: int = 5) -> None:
        super().__init__()
        channels = as_chw(input_shape, "notes4_dropout_cnn")[0]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, first_kernel),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(0.1),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
        )
        self.flat_features = flat_features(self.features, input_shape, "notes4_dropout_cnn")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.flat_features, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(128, num_classes),
        )


def notes0_cnn(input_shape: Sequence[int], num_classes: int, hidden: int = 128) -> Notes0CNN:
    """Two 3x3 convs, one max-pool, a hidden fully-connected layer of `hidden` units."""
    return Notes0CNN(input_shape, num_classes, hidden=hidden)


def notes1_cnn(input_shape: Sequence[int], num_classes: int) -> Notes1CNN:
    """Three 5x5 convs with two max-pools; needs images of at least 20x20 pixels."""
    return Notes1CNN(input_shape, num_classes)


def notes2_simple_cnn(input_shape: Sequence[int], num_classes: int) -> Notes2SimpleCNN:
    """Two padded 3x3 conv + max-pool stages and a 512-unit hidden layer."""
    return Notes2SimpleCNN(input_shape, num_classes)


def notes4_dropout_cnn(
    input_shape: Sequence[int], num_classes: int, first_kernel: int = 5
) -> Notes4DropoutCNN:
    """Two conv + max-pool stages regularised with dropout (0.1, 0.25, 0.5)."""
    return Notes4DropoutCNN(input_shape, num_classes, first_kernel=first_kernel)

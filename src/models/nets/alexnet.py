"""AlexNet (Krizhevsky et al., 2012) for small (8-96 px) and ImageNet-sized images.

Two stems (`stem`), both with AlexNet's widths 64-192-384-256-256 and three max-pools:

* "imagenet": the original (as in torchvision): an 11x11 stride-4 and a 5x5 convolution, then three
  3x3 ones, with overlapping 3x3 stride-2 max-pools; it needs images of at least 63 px.
* "small": 3x3 stride-1 convolutions and 2x2 max-pools, which keep enough of a 28-32 px image
  (11x11/4 would shrink it to nothing).

Two classifier heads (`classifier`), both dropout-fc-ReLU-dropout-fc-ReLU-fc:

* "imagenet": the original: the 256 channels average-pooled to 6x6, fc 9216-4096-4096-classes
  (`hidden` 4096).
* "small": the 256 channels average-pooled to 2x2, fc 1024-1024-1024-classes (`hidden` 1024),
  about 4 million parameters in all.

"auto" picks "imagenet" from 128 px (ImageNet-sized inputs, 224 px in the paper) and "small" below,
for the stem and the head alike. At 224 px the parameter counts equal torchvision's `alexnet`
(tests/models/test_cnn_nets.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from src.errors import UserError
from src.models.nets.common import as_chw, feature_shape

__all__ = ["AlexNet", "IMAGENET_MIN_SIZE", "alexnet"]

IMAGENET_MIN_SIZE = 128  # stem / classifier "auto": the original layers for images at least this large (pixels)
HEADS = {"imagenet": (6, 4096), "small": (2, 1024)}  # head: (side of the pooled map, default width)

Kind = Literal["auto", "small", "imagenet"]


def choose(kind: str, what: str, input_shape: Sequence[int]) -> str:
    """The variant that `kind` ("auto", "small" or "imagenet") of `what` (stem, classifier) means here."""
    if kind not in ("auto", "small", "imagenet"):
        raise UserError(f"alexnet {what} must be 'auto', 'small' or 'imagenet', not {kind!r}.")
    if kind != "auto":
        return kind
    _, height, width = as_chw(input_shape, "alexnet")
    return "imagenet" if min(height, width) >= IMAGENET_MIN_SIZE else "small"


def make_features(stem: str, channels: int) -> nn.Sequential:
    """AlexNet's five convolutions and three max-pools, with the "imagenet" or "small" first layers."""
    if stem == "imagenet":
        head = [nn.Conv2d(channels, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2)]
        last_pool = nn.MaxPool2d(3, 2)
    else:
        head = [nn.Conv2d(channels, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                nn.Conv2d(64, 192, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        last_pool = nn.MaxPool2d(2)
    return nn.Sequential(
        *head,
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        last_pool,
    )


class AlexNet(nn.Module):
    """Five conv layers with three max-pools, adaptive average pooling, three fc layers."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        dropout: float = 0.5,
        hidden: int | None = None,
        stem: Kind = "auto",
        classifier: Kind = "auto",
    ) -> None:
        super().__init__()
        channels = as_chw(input_shape, "alexnet")[0]
        self.stem_kind = choose(stem, "stem", input_shape)
        self.classifier_kind = choose(classifier, "classifier", input_shape)
        pooled, default_width = HEADS[self.classifier_kind]
        width = default_width if hidden is None else hidden
        self.features = make_features(self.stem_kind, channels)
        feature_shape(self.features, input_shape, "alexnet")  # raises InputShapeError when the images are too small
        self.avgpool = nn.AdaptiveAvgPool2d(pooled)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(256 * pooled * pooled, width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def alexnet(
    input_shape: Sequence[int],
    num_classes: int,
    dropout: float = 0.5,
    hidden: int | None = None,
    stem: Kind = "auto",
    classifier: Kind = "auto",
) -> AlexNet:
    """AlexNet with `hidden` units in each of its two hidden fc layers (null: 4096 for the ImageNet
    head, 1024 for the small one); stem and classifier chosen by image size unless given."""
    return AlexNet(input_shape, num_classes, dropout=dropout, hidden=hidden, stem=stem, classifier=classifier)

"""VGG (Simonyan & Zisserman, 2014): VGG-11/13/16/19, with or without batch norm, for small and
ImageNet-sized images.

The convolutional part is the original: stacks of 3x3 padded convolutions (which keep the map's
size) separated by five 2x2 max-pools. The max-pools use `ceil_mode=True`, so an odd-sized map is
rounded up rather than down: 28 px goes 28-14-7-4-2-1 instead of 28-14-7-3-1-0, which would leave
nothing for the last pool (even sizes such as 224 px pool exactly as in the paper). No image size
makes the map vanish (a 1x1 map pools to 1x1), so VGG accepts even 8x8 images.

Two classifier heads (`classifier`):

* "imagenet": the paper's, as in torchvision: the 512 channels average-pooled to 7x7, then
  fc 25088-4096-4096-classes with ReLU and dropout (`classifier_width` 4096).
* "small": the usual CIFAR variant for 8-96 px images: the 512 channels average-pooled to 1x1,
  then fc 512-512-512-classes (`classifier_width` 512); a 4096-wide head on a 7x7 map would be
  over a hundred million parameters for a few thousand small images.

"auto" picks "imagenet" from 128 px (ImageNet-sized inputs, 224 px in the paper) and "small" below.
With batch norm the convolutions have no bias (batch norm's shift replaces it); torchvision's
`vgg*_bn` keep one, so they have one parameter more per conv channel. Otherwise the parameter counts
at 224 px equal torchvision's (tests/models/test_cnn_nets.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from src.errors import UserError
from src.models.nets.common import as_chw, feature_shape

__all__ = ["VGG", "CONFIGS", "IMAGENET_MIN_SIZE", "vgg11", "vgg13", "vgg16", "vgg19"]

# Output channels of each 3x3 convolution; "M" is a 2x2 max-pool. Keyed by depth (weight layers).
# fmt: off
CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
# fmt: on
IMAGENET_MIN_SIZE = 128  # classifier "auto": the ImageNet head for images at least this large (pixels)
HEADS = {"imagenet": (7, 4096), "small": (1, 512)}  # head: (side of the pooled map, default width)

Head = Literal["auto", "small", "imagenet"]


def choose_head(classifier: str, input_shape: Sequence[int], name: str) -> str:
    """The head that `classifier` ("auto", "small" or "imagenet") means for images of `input_shape`."""
    if classifier not in ("auto", *HEADS):
        raise UserError(f"{name} classifier must be 'auto', 'small' or 'imagenet', not {classifier!r}.")
    if classifier != "auto":
        return classifier
    _, height, width = as_chw(input_shape, name)
    return "imagenet" if min(height, width) >= IMAGENET_MIN_SIZE else "small"


def make_features(cfg: Sequence[int | str], in_channels: int, batch_norm: bool) -> nn.Sequential:
    """The convolutional part described by `cfg` (see CONFIGS)."""
    layers: list[nn.Module] = []
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            continue
        out_channels = int(item)
        layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        in_channels = out_channels
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """A VGG conv stack (from `cfg`), average pooling to the head's map size and a three-layer classifier."""

    def __init__(
        self,
        cfg: Sequence[int | str],
        input_shape: Sequence[int],
        num_classes: int,
        batch_norm: bool = False,
        dropout: float = 0.5,
        classifier: Head = "auto",
        classifier_width: int | None = None,
        name: str = "vgg",
    ) -> None:
        super().__init__()
        channels = as_chw(input_shape, name)[0]
        self.classifier_kind = choose_head(classifier, input_shape, name)
        pooled, default_width = HEADS[self.classifier_kind]
        width = default_width if classifier_width is None else classifier_width
        self.features = make_features(cfg, channels, batch_norm)
        out_channels = feature_shape(self.features, input_shape, name)[0]
        self.avgpool = nn.AdaptiveAvgPool2d(pooled)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(out_channels * pooled * pooled, width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def _vgg(depth: int, input_shape: Sequence[int], num_classes: int, batch_norm: bool, **kwargs) -> VGG:
    name = f"vgg{depth}_bn" if batch_norm else f"vgg{depth}"
    return VGG(CONFIGS[depth], input_shape, num_classes, batch_norm=batch_norm, name=name, **kwargs)


def vgg11(
    input_shape: Sequence[int],
    num_classes: int,
    batch_norm: bool = False,
    dropout: float = 0.5,
    classifier: Head = "auto",
    classifier_width: int | None = None,
) -> VGG:
    """VGG-11 (configuration A): 8 conv layers and 3 fully-connected layers."""
    return _vgg(11, input_shape, num_classes, batch_norm, dropout=dropout, classifier=classifier,
                classifier_width=classifier_width)


def vgg13(
    input_shape: Sequence[int],
    num_classes: int,
    batch_norm: bool = False,
    dropout: float = 0.5,
    classifier: Head = "auto",
    classifier_width: int | None = None,
) -> VGG:
    """VGG-13 (configuration B): 10 conv layers and 3 fully-connected layers."""
    return _vgg(13, input_shape, num_classes, batch_norm, dropout=dropout, classifier=classifier,
                classifier_width=classifier_width)


def vgg16(
    input_shape: Sequence[int],
    num_classes: int,
    batch_norm: bool = False,
    dropout: float = 0.5,
    classifier: Head = "auto",
    classifier_width: int | None = None,
) -> VGG:
    """VGG-16 (configuration D): 13 conv layers and 3 fully-connected layers."""
    return _vgg(16, input_shape, num_classes, batch_norm, dropout=dropout, classifier=classifier,
                classifier_width=classifier_width)


def vgg19(
    input_shape: Sequence[int],
    num_classes: int,
    batch_norm: bool = False,
    dropout: float = 0.5,
    classifier: Head = "auto",
    classifier_width: int | None = None,
) -> VGG:
    """VGG-19 (configuration E): 16 conv layers and 3 fully-connected layers."""
    return _vgg(19, input_shape, num_classes, batch_norm, dropout=dropout, classifier=classifier,
                classifier_width=classifier_width)

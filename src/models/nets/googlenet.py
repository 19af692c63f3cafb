"""GoogLeNet / Inception v1 (Szegedy et al., 2014) for small and ImageNet-sized images.

Nine `Inception` blocks (3a-5b) with the paper's channel numbers, each concatenating four
branches: 1x1; 1x1 reduce -> 3x3; 1x1 reduce -> 5x5 (a true 5x5, as in the paper; torchvision's
variant uses 3x3 there); 3x3 max-pool -> 1x1 projection. Two `InceptionAux` classifiers, after 4a
and 4d, add extra gradient to the middle of the net during training. Every convolution is followed
by batch norm (not in the 2014 paper), which makes the deep net trainable without tricks.

Stems: "imagenet" is the paper's (7x7/2 conv, max-pool, 1x1, 3x3, max-pool: 224 px -> 28 px);
"small" is a single 3x3 conv to 192 channels without downsampling, as in the common CIFAR variant;
"auto" picks "small" for images of at most 64 px. Max-pools use ceil_mode, so 28 px works
(28 -> 14 -> 7 with the small stem).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from src.errors import UserError
from src.models.nets.common import as_chw, feature_shape

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "Inception", "InceptionAux", "ConvBNReLU", "googlenet"]


class GoogLeNetOutputs(NamedTuple):
    """What GoogLeNet returns in training mode with auxiliary classifiers: three sets of logits."""

    logits: torch.Tensor
    aux_logits1: torch.Tensor
    aux_logits2: torch.Tensor


class ConvBNReLU(nn.Sequential):
    """Convolution (no bias: batch norm has one) -> batch norm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Inception(nn.Module):
    """Four parallel branches over the same input, concatenated along the channels."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = ConvBNReLU(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(ConvBNReLU(in_channels, ch3x3red, 1), ConvBNReLU(ch3x3red, ch3x3, 3))
        self.branch3 = nn.Sequential(ConvBNReLU(in_channels, ch5x5red, 1), ConvBNReLU(ch5x5red, ch5x5, 5))
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), ConvBNReLU(in_channels, pool_proj, 1)
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool -> 1x1 conv (128) -> fc 1024 -> dropout 0.7 -> fc."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = ConvBNReLU(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(torch.relu(self.fc1(x))))


def make_stem(kind: str, in_channels: int) -> nn.Sequential:
    """The layers before Inception 3a; both end with 192 channels."""
    if kind == "small":
        return nn.Sequential(ConvBNReLU(in_channels, 192, 3))
    return nn.Sequential(
        ConvBNReLU(in_channels, 64, 7, stride=2),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        ConvBNReLU(64, 64, 1),
        ConvBNReLU(64, 192, 3),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
    )


class GoogLeNet(nn.Module):
    """Inception v1. In training mode with `aux_logits` it returns GoogLeNetOutputs, else the logits."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        aux_logits: bool = True,
        dropout: float = 0.4,
        stem: str = "auto",
    ) -> None:
        super().__init__()
        channels, height, width = as_chw(input_shape, "googlenet")
        if stem == "auto":
            stem = "small" if min(height, width) <= 64 else "imagenet"
        if stem not in ("small", "imagenet"):
            raise UserError(f"googlenet stem must be 'auto', 'small' or 'imagenet', not {stem!r}.")
        self.stem_kind = stem
        self.aux_logits = aux_logits
        self.stem = make_stem(stem, channels)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.aux1 = InceptionAux(512, num_classes) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self._init_weights()
        feature_shape(self, input_shape, "googlenet")  # InputShapeError if the images are too small

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        with_aux = self.training and self.aux1 is not None and self.aux2 is not None
        x = self.inception3b(self.inception3a(self.stem(x)))
        x = self.inception4a(self.maxpool3(x))
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if with_aux:
            return GoogLeNetOutputs(logits, aux1, aux2)
        return logits


def googlenet(
    input_shape: Sequence[int],
    num_classes: int,
    aux_logits: bool = True,
    dropout: float = 0.4,
    stem: str = "auto",
) -> GoogLeNet:
    """GoogLeNet; the loss in training is usually logits loss + 0.3 * (aux1 loss + aux2 loss)."""
    return GoogLeNet(input_shape, num_classes, aux_logits=aux_logits, dropout=dropout, stem=stem)

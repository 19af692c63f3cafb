"""ResNet (He et al., 2015): ResNet-18/34 with `BasicBlock`, ResNet-50/101 with `Bottleneck`.

Each block adds its input back to its output (a residual connection), so a deep stack can learn
the identity easily and gradients reach the early layers. Stems: "imagenet" is the paper's
(7x7/2 conv + 3x3/2 max-pool, a 4x reduction meant for 224 px); "small" is a 3x3 stride-1 conv
without max-pool, the usual CIFAR variant, which keeps enough resolution for 28-32 px images;
"auto" picks "small" below 64 px. In Bottleneck the stride sits on the 3x3 conv ("ResNet v1.5").
With padded, strided convolutions every stage maps >= 1 px to >= 1 px, so any image size works.

`weights_file=PATH` starts the net from a state dict: one of this project's ResNets, or torchvision's
(`torchvision.models.resnet18().state_dict()`, ImageNet weights included) with `stem="imagenet"`,
whose layout is torchvision's exactly apart from the stem's names (`conv1`, `bn1` here `stem.0`,
`stem.1`). A different class count re-initialises `fc`; grey images adapt the RGB stem.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from src.errors import UserError
from src.models.nets.common import as_chw, feature_shape
from src.models.nets.weights import load_weights

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "resnet101"]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution that keeps the size (stride 1) or halves it (stride 2); no bias before BN."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution: mixes channels only (and subsamples with stride 2)."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs plus the shortcut; output has `planes` channels (expansion 1)."""

    expansion = 1

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand, plus the shortcut; output has 4 * `planes` channels."""

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """Stem, four stages of residual blocks (64, 128, 256, 512 planes), global average pool, fc."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        input_shape: Sequence[int],
        num_classes: int,
        stem: str = "auto",
        zero_init_residual: bool = False,
        name: str = "resnet",
    ) -> None:
        super().__init__()
        channels, height, width = as_chw(input_shape, name)
        if stem == "auto":
            stem = "small" if min(height, width) < 64 else "imagenet"
        if stem == "small":
            self.stem = nn.Sequential(conv3x3(channels, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        else:
            raise UserError(f"{name} stem must be 'auto', 'small' or 'imagenet', not {stem!r}.")
        self.stem_kind = stem
        self.in_channels = 64
        self.layer1 = self._make_stage(block, 64, layers[0], stride=1)
        self.layer2 = self._make_stage(block, 128, layers[1], stride=2)
        self.layer3 = self._make_stage(block, 256, layers[2], stride=2)
        self.layer4 = self._make_stage(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._init_weights(zero_init_residual)
        feature_shape(self, input_shape, name)  # InputShapeError if the images cannot go through

    def _make_stage(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        """`blocks` blocks; the first changes size/width, so its shortcut gets a 1x1 conv + BN."""
        downsample = None
        if stride != 1 or self.in_channels != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.in_channels, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        stage = [block(self.in_channels, planes, stride, downsample)]
        self.in_channels = planes * block.expansion
        stage += [block(self.in_channels, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """Kaiming init for convs; BN starts as identity, or as zero on each block's last BN so
        that every residual block starts as the identity (`zero_init_residual`)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def from_torchvision_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict with this file's names: `conv1.*` -> `stem.0.*`, `bn1.*` -> `stem.1.*`
    (the blocks, downsample shortcuts and `fc` are named alike); other state dicts are returned as they are."""
    if "conv1.weight" not in state:
        return state
    renamed = {}
    for key, value in state.items():
        for old, new in (("conv1.", "stem.0."), ("bn1.", "stem.1.")):
            if key.startswith(old):
                key = new + key[len(old):]
                break
        renamed[key] = value
    return renamed


def _build(block: type[BasicBlock | Bottleneck], layers: Sequence[int], input_shape: Sequence[int], num_classes: int,
           stem: str, name: str, weights_file: str | None) -> ResNet:
    net = ResNet(block, layers, input_shape, num_classes, stem=stem, name=name)
    if weights_file:
        hint = "; torchvision's ResNet weights need model.net.stem=imagenet" if net.stem_kind != "imagenet" else ""
        load_weights(net, weights_file, head=["fc"], first_conv=["stem.0"], rename=from_torchvision_names,
                     name=name, hint=hint)
    return net


def resnet18(input_shape: Sequence[int], num_classes: int, stem: str = "auto",
             weights_file: str | None = None) -> ResNet:
    """ResNet-18: BasicBlocks [2, 2, 2, 2], 512 features before the fc layer."""
    return _build(BasicBlock, [2, 2, 2, 2], input_shape, num_classes, stem, "resnet18", weights_file)


def resnet34(input_shape: Sequence[int], num_classes: int, stem: str = "auto",
             weights_file: str | None = None) -> ResNet:
    """ResNet-34: BasicBlocks [3, 4, 6, 3], 512 features before the fc layer."""
    return _build(BasicBlock, [3, 4, 6, 3], input_shape, num_classes, stem, "resnet34", weights_file)


def resnet50(input_shape: Sequence[int], num_classes: int, stem: str = "auto",
             weights_file: str | None = None) -> ResNet:
    """ResNet-50: Bottlenecks [3, 4, 6, 3], 2048 features before the fc layer."""
    return _build(Bottleneck, [3, 4, 6, 3], input_shape, num_classes, stem, "resnet50", weights_file)


def resnet101(input_shape: Sequence[int], num_classes: int, stem: str = "auto",
              weights_file: str | None = None) -> ResNet:
    """ResNet-101: Bottlenecks [3, 4, 23, 3], 2048 features before the fc layer."""
    return _build(Bottleneck, [3, 4, 23, 3], input_shape, num_classes, stem, "resnet101", weights_file)

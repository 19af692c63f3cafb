"""Convolution and pooling on one 2-D image, the way the course notes compute them by hand, built on
`torch.nn.functional` (so the worked examples and the visuals run the same code a CNN runs).

Every function takes and returns 2-D tensors (H, W); numbers are kept in float64, so small integer
examples come out exact. Like every deep-learning library, `F.conv2d` computes a cross-correlation
(the kernel is not flipped), which is what the course notes' hand calculations do too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["as_image", "convolve2d", "pool2d", "filter_with_zero_border", "repeated_convolution", "POOLS"]

POOLS = ("max", "avg", "min")


def as_image(values: Sequence[Sequence[float]] | torch.Tensor) -> torch.Tensor:
    """A 2-D float64 tensor from nested lists (or a tensor of shape (H, W))."""
    image = torch.as_tensor(values, dtype=torch.float64)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image (H, W), got shape {tuple(image.shape)}")
    return image


def convolve2d(image, kernel, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """One-channel convolution (cross-correlation) with zero padding: output side
    floor((I - K + 2P) / S) + 1, as `src.models.nets.common.conv_output_size` says."""
    x, k = as_image(image), as_image(kernel)
    return F.conv2d(x[None, None], k[None, None], stride=stride, padding=padding)[0, 0]


def pool2d(image, kind: str = "max", kernel: int = 2, stride: int | None = None) -> torch.Tensor:
    """Max, average or min pooling of a 2-D image; `stride` defaults to `kernel` (no overlap),
    a stride smaller than the kernel is overlapped pooling (e.g. 3x3 windows, stride 2)."""
    if kind not in POOLS:
        raise ValueError(f"pooling kind {kind!r} is unknown; choose one of {list(POOLS)}")
    x = as_image(image)[None, None]
    stride = kernel if stride is None else stride
    if kind == "max":
        out = F.max_pool2d(x, kernel, stride)
    elif kind == "avg":
        out = F.avg_pool2d(x, kernel, stride)
    else:  # min pooling: the max of the negated image, negated back
        out = -F.max_pool2d(-x, kernel, stride)
    return out[0, 0]


def filter_with_zero_border(image, kernel) -> torch.Tensor:
    """Notes 4's filtering: the kernel is applied only where it fits (a valid convolution), and the
    result is written into an image of the input's size whose border pixels, which cannot be
    computed, are 0. (This is not the convolution of a zero-padded input.)"""
    x, k = as_image(image), as_image(kernel)
    valid = convolve2d(x, k)
    top, left = (k.shape[0] - 1) // 2, (k.shape[1] - 1) // 2
    out = torch.zeros_like(x)
    out[top : top + valid.shape[0], left : left + valid.shape[1]] = valid
    return out


def repeated_convolution(image, kernel, times: int) -> list[torch.Tensor]:
    """[image, conv(image), conv(conv(image)), ...]: `times` valid convolutions with one kernel
    (notes 0's diagonal kernel three times: 28 -> 26 -> 24 -> 22 pixels)."""
    maps = [as_image(image)]
    for _ in range(times):
        maps.append(convolve2d(maps[-1], kernel))
    return maps

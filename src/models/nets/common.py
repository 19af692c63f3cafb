"""Helpers shared by the CNNs: output-size arithmetic and build-time checks of the input shape.

Every net is built for one input shape (C, H, W). Nets that flatten a feature map into a
fully-connected layer need the map's size at build time, and every net should refuse an image
too small to pass through it *when it is built*, in one plain sentence, rather than fail deep
inside the first training step. Both come from a dummy forward pass on zeros: it is exact for
any mix of layers and cannot drift out of sync with the layers the way hand-written arithmetic can.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from src.errors import UserError


class InputShapeError(UserError):
    """The data set's images cannot go through the chosen net (raised when the net is built): one sentence."""


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Length of a convolution's (or pooling's) output along one axis: floor((I - K + 2P) / S) + 1."""
    return (size - kernel + 2 * padding) // stride + 1


def as_chw(input_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    """`input_shape` as a (C, H, W) tuple of ints; InputShapeError if it is not one."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputShapeError(
            f"{name} needs images given as (channels, height, width) with positive sizes, "
            f"but the data set gives {tuple(input_shape)}; choose an image data set."
        )
    return shape  # type: ignore[return-value]


@torch.no_grad()
def _try_forward(module: nn.Module, shape: Sequence[int]) -> torch.Size | None:
    """Output shape (without the batch axis) of `module` on one zero image, or None if it cannot run."""
    was_training = module.training
    module.eval()  # batch norm cannot run on one image in training mode
    try:
        out = module(torch.zeros(1, *shape))
    except RuntimeError:  # kernel larger than the map, "output size is too small", ...
        return None
    finally:
        module.train(was_training)
    if out.numel() == 0:
        return None
    return out.shape[1:]


def minimum_size(module: nn.Module, channels: int, limit: int = 512) -> int | None:
    """Smallest side s such that `module` runs on s x s images (None if none up to `limit` does).

    Output sizes of convolutions and poolings never shrink as the input grows, so the sizes
    that work form a range [s, oo): double until one works, then bisect.
    """
    works = lambda side: _try_forward(module, (channels, side, side)) is not None
    high = 1
    while not works(high):
        high *= 2
        if high > limit:
            return None
    low = high // 2  # fails (or is 0)
    while high - low > 1:
        mid = (low + high) // 2
        if works(mid):
            high = mid
        else:
            low = mid
    return high


def feature_shape(module: nn.Module, input_shape: Sequence[int], name: str) -> torch.Size:
    """Output shape (without the batch axis) of `module` on `input_shape` images.

    Raises InputShapeError, naming the net and the minimum image size, if the images are too small.
    """
    c, h, w = as_chw(input_shape, name)
    shape = _try_forward(module, (c, h, w))
    if shape is not None:
        return shape
    need = minimum_size(module, c)
    if need is None:
        raise InputShapeError(f"{name} cannot process images of shape {c}x{h}x{w}; choose another model.")
    raise InputShapeError(
        f"{name} needs images of at least {need}x{need} pixels, but the data set gives {c}x{h}x{w}; "
        "choose a data set with larger images or a smaller model."
    )


def flat_features(module: nn.Module, input_shape: Sequence[int], name: str) -> int:
    """Number of features `module`'s output has once flattened (the in_features of the next Linear)."""
    return math.prod(feature_shape(module, input_shape, name))

"""The speed-run net (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU", arXiv 2404.00498).

A small VGG-like net, written from the paper's description:

- a 2x2 "whitening" convolution without padding (3x32x32 -> 24x31x31): its filters are the
  eigenvectors of the covariance of 2x2 patches of training images, scaled by 1 / sqrt(eigenvalue
  + eps), together with their negatives (2 * C * 2 * 2 filters), so that a GELU after it keeps
  both signs of every decorrelated direction. The weights are set from data
  (`PatchWhitening.fit`, done by `SpeedrunModule` from the training split) and never trained;
  the bias is trained (the module freezes it after a few epochs);
- three blocks conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU of widths 64, 256, 256
  (the BN scales are fixed at 1, only their biases learn; batch-norm momentum in the paper's
  convention: running = momentum * running + (1 - momentum) * batch, 0.6);
- a global max-pool (the paper's 3x3 max-pool on the final 3x3 map; the same for 28 and 32 px),
  a linear layer without bias and a fixed scaling of the logits (1/9).

Every 3x3 convolution starts with its first `in_channels` filters as identity (Dirac) kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from src.errors import UserError
from src.models.nets.common import as_chw, feature_shape

__all__ = ["PatchWhitening", "SpeedrunBlock", "SpeedrunNet", "speedrun_net", "patch_covariance"]


def patch_covariance(images: torch.Tensor, kernel_size: int, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (D,), covariance (D, D)) of all `kernel_size` x `kernel_size` patches of float images
    (N, C, H, W), D = C * k * k in the order of a conv weight's (C, k, k); float64 sums, in chunks."""
    d = images.shape[1] * kernel_size * kernel_size
    total = torch.zeros(d, dtype=torch.float64, device=images.device)
    outer = torch.zeros(d, d, dtype=torch.float64, device=images.device)
    count = 0
    for start in range(0, len(images), chunk):
        patches = F.unfold(images[start : start + chunk].float(), kernel_size)  # (n, D, L)
        flat = patches.transpose(1, 2).reshape(-1, d).double()
        total += flat.sum(0)
        outer += flat.T @ flat
        count += len(flat)
    mean = total / count
    return mean, outer / count - torch.outer(mean, mean)


class PatchWhitening(nn.Conv2d):
    """k x k convolution (no padding) whose 2 * C * k * k filters whiten patches: see `fit`."""

    def __init__(self, in_channels: int, kernel_size: int = 2) -> None:
        d = in_channels * kernel_size * kernel_size
        super().__init__(in_channels, 2 * d, kernel_size, padding=0, bias=True)
        self.weight.requires_grad_(False)  # set from data, never trained
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, eps: float = 5e-4) -> torch.Tensor:
        """Set the filters from normalised float images (N, C, H, W): with the patch covariance
        S = V diag(l) V^T, the first half of the filters are the rows of diag(1 / sqrt(l + eps)) V^T
        (largest eigenvalue first), the second half their negatives; the bias is -W mean, so on these
        images the first half's outputs have zero mean and covariance diag(l / (l + eps)), about the
        identity. Returns the eigenvalues (descending)."""
        k = self.kernel_size[0]
        mean, cov = patch_covariance(images, k)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
        eigenvalues, eigenvectors = eigenvalues.flip(0).clamp_min(0), eigenvectors.flip(1)
        half = eigenvectors.T / (eigenvalues + eps).sqrt().unsqueeze(1)  # (D, D): one filter per row
        weight = torch.cat([half, -half])
        self.weight.copy_(weight.view_as(self.weight).to(self.weight))  # copy_: keeps the memory format
        self.bias.copy_((-weight @ mean).to(self.bias))
        return eigenvalues.float()


def _batch_norm(channels: int, momentum: float, eps: float) -> nn.BatchNorm2d:
    """BN with the paper's momentum convention (PyTorch's is 1 - momentum) and a fixed scale of 1."""
    norm = nn.BatchNorm2d(channels, eps=eps, momentum=1.0 - momentum)
    norm.weight.requires_grad_(False)
    return norm


def _dirac_conv(in_channels: int, out_channels: int, dirac: bool) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    if dirac:
        with torch.no_grad():
            nn.init.dirac_(conv.weight[: min(in_channels, out_channels)])
    return conv


class SpeedrunBlock(nn.Module):
    """conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU."""

    def __init__(self, in_channels: int, out_channels: int, bn_momentum: float = 0.6, bn_eps: float = 1e-12,
                 dirac: bool = True) -> None:
        super().__init__()
        self.conv1 = _dirac_conv(in_channels, out_channels, dirac)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _batch_norm(out_channels, bn_momentum, bn_eps)
        self.conv2 = _dirac_conv(out_channels, out_channels, dirac)
        self.norm2 = _batch_norm(out_channels, bn_momentum, bn_eps)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class SpeedrunNet(nn.Module):
    """Whitening conv + GELU, three `SpeedrunBlock`s, global max-pool, linear (no bias), x scaling."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        widths: Sequence[int] = (64, 256, 256),
        whitening_kernel: int = 2,
        batchnorm_momentum: float = 0.6,
        batchnorm_eps: float = 1e-12,
        scaling_factor: float = 1 / 9,
        dirac_init: bool = True,
    ) -> None:
        super().__init__()
        channels = as_chw(input_shape, "speedrun_net")[0]
        if len(widths) != 3 or min(widths) < 1:
            raise UserError(f"speedrun_net widths must be three positive numbers, got {list(widths)}.")
        if not 0.0 <= batchnorm_momentum < 1.0:
            raise UserError(f"speedrun_net batchnorm_momentum must be in [0, 1), got {batchnorm_momentum}.")
        self.whiten = PatchWhitening(channels, whitening_kernel)
        self.act = nn.GELU()
        width_in = self.whiten.out_channels
        blocks = []
        for width in widths:
            blocks.append(SpeedrunBlock(width_in, int(width), batchnorm_momentum, batchnorm_eps, dirac_init))
            width_in = int(width)
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(width_in, num_classes, bias=False)
        self.scaling_factor = float(scaling_factor)
        feature_shape(self, input_shape, "speedrun_net")  # InputShapeError if the images are too small

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.act(self.whiten(x)))
        return self.head(torch.flatten(self.pool(x), 1)) * self.scaling_factor


def speedrun_net(
    input_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (64, 256, 256),
    whitening_kernel: int = 2,
    batchnorm_momentum: float = 0.6,
    batchnorm_eps: float = 1e-12,
    scaling_factor: float = 1 / 9,
    dirac_init: bool = True,
) -> SpeedrunNet:
    """The paper's net (widths 64/256/256, 2x2 whitening, BN momentum 0.6, logits x 1/9)."""
    return SpeedrunNet(input_shape, num_classes, widths, whitening_kernel, batchnorm_momentum, batchnorm_eps,
                       scaling_factor, dirac_init)

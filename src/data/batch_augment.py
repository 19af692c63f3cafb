"""Training-only augmentations of whole float batches (N, C, H, W), on whatever device they live.

Each is a callable `x -> x'` applied after normalisation by the training loader (see
`InMemoryDataModule.build_augmentations` and `conf/augment/`). Every image gets its own random
draw, but the work is one set of tensor operations for the whole batch: no Python loop over images.
Randomness comes from the global generator of the batch's device (`torch.rand(..., device=x.device)`),
so `seed_everything` makes a run reproducible on the CPU and on a GPU.

Values are normalised when these run, so "zero" (padding, erasing) means the data set's mean pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from src.errors import require

__all__ = ["RandomHorizontalFlip", "RandomCrop", "RandomRotation", "GaussianNoise", "RandomErasing"]


def _check_batch(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{name} expects a float batch (N, C, H, W), got {tuple(x.shape)} {x.dtype}")


def _uniform(n: int, low: float, high: float, x: torch.Tensor) -> torch.Tensor:
    """`n` draws from U(low, high) on x's device (float32, whatever x's dtype)."""
    return torch.rand(n, device=x.device) * (high - low) + low


class RandomHorizontalFlip:
    """Mirror each image left-right with probability `p`."""

    def __init__(self, p: float = 0.5) -> None:
        require(0.0 <= p <= 1.0, f"augment RandomHorizontalFlip p must be in [0, 1], got {p}.")
        self.p = p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, "RandomHorizontalFlip")
        flip = torch.rand(len(x), device=x.device) < self.p
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop:
    """Pad by `padding` pixels on every side, then cut each image back to its size at a random offset.

    `padding_mode`: "zeros" (the mean pixel once normalised), "reflect" or "replicate".
    """

    MODES = ("zeros", "reflect", "replicate")

    def __init__(self, padding: int = 4, padding_mode: str = "zeros") -> None:
        require(
            padding_mode in self.MODES,
            f"augment RandomCrop padding_mode must be one of {list(self.MODES)}, not {padding_mode!r}.",
        )
        require(int(padding) >= 0, f"augment RandomCrop padding must be >= 0, got {padding}.")
        self.padding, self.padding_mode = int(padding), padding_mode

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, "RandomCrop")
        p = self.padding
        if p == 0:
            return x
        n, c, h, w = x.shape
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        padded = F.pad(x, (p, p, p, p), mode=mode)
        top = torch.randint(0, 2 * p + 1, (n,), device=x.device)
        left = torch.randint(0, 2 * p + 1, (n,), device=x.device)
        rows = (top.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * p)
        cols = (left.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
        return padded.gather(2, rows).gather(3, cols)

    def __repr__(self) -> str:
        return f"RandomCrop(padding={self.padding}, padding_mode={self.padding_mode!r})"


class RandomRotation:
    """Rotate each image about its centre by an angle drawn uniformly from [-degrees, degrees].

    One `affine_grid` + `grid_sample` (bilinear) for the batch; corners that come from outside the
    image are filled per `padding_mode` ("zeros", "border" or "reflection", as in grid_sample).
    """

    def __init__(self, degrees: float = 15.0, padding_mode: str = "zeros") -> None:
        require(
            padding_mode in ("zeros", "border", "reflection"),
            f"augment RandomRotation padding_mode must be zeros, border or reflection, not {padding_mode!r}.",
        )
        self.degrees, self.padding_mode = float(degrees), padding_mode

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, "RandomRotation")
        n, _, h, w = x.shape
        angle = _uniform(n, -self.degrees, self.degrees, x) * (math.pi / 180.0)
        cos, sin = angle.cos(), angle.sin()
        zero = torch.zeros_like(cos)
        # Rotation in pixel units, written in grid_sample's [-1, 1] coordinates (h/w fix the aspect).
        theta = torch.stack(
            [torch.stack([cos, -sin * h / w, zero], 1), torch.stack([sin * w / h, cos, zero], 1)], 1
        ).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees}, padding_mode={self.padding_mode!r})"


class GaussianNoise:
    """Add independent N(0, std^2) noise to every value (in normalised units)."""

    def __init__(self, std: float = 0.1) -> None:
        require(std >= 0, f"augment GaussianNoise std must be >= 0, got {std}.")
        self.std = float(std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, "GaussianNoise")
        return x + torch.randn_like(x) * self.std

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std})"


class RandomErasing:
    """Cutout: with probability `p`, set one random rectangle of each image to `value` (all channels).

    The rectangle covers a fraction of the image drawn from `scale`, with an aspect ratio (h / w)
    drawn log-uniformly from `ratio`, at a uniformly random position inside the image.
    """

    def __init__(
        self,
        p: float = 0.5,
        scale: Sequence[float] = (0.02, 0.2),
        ratio: Sequence[float] = (0.3, 3.3),
        value: float = 0.0,
    ) -> None:
        require(0.0 <= p <= 1.0, f"augment RandomErasing p must be in [0, 1], got {p}.")
        require(
            0 < scale[0] <= scale[1] <= 1,
            f"augment RandomErasing scale must be 0 < low <= high <= 1, got {list(scale)}.",
        )
        require(0 < ratio[0] <= ratio[1], f"augment RandomErasing ratio must be 0 < low <= high, got {list(ratio)}.")
        self.p, self.scale, self.ratio, self.value = p, tuple(scale), tuple(ratio), float(value)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, "RandomErasing")
        n, _, h, w = x.shape
        area = _uniform(n, *self.scale, x) * (h * w)
        aspect = _uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), x).exp()
        eh = (area * aspect).sqrt().round().clamp(1, h).long()
        ew = (area / aspect).sqrt().round().clamp(1, w).long()
        top = (torch.rand(n, device=x.device) * (h - eh + 1)).long()  # uniform in [0, h - eh]
        left = (torch.rand(n, device=x.device) * (w - ew + 1)).long()
        erase = torch.rand(n, device=x.device) < self.p
        r, c = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        in_rows = (r >= top.view(n, 1)) & (r < (top + eh).view(n, 1))
        in_cols = (c >= left.view(n, 1)) & (c < (left + ew).view(n, 1))
        mask = in_rows.view(n, 1, h, 1) & in_cols.view(n, 1, 1, w) & erase.view(n, 1, 1, 1)
        return x.masked_fill(mask, self.value)

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p}, scale={list(self.scale)}, ratio={list(self.ratio)}, value={self.value})"


# --- the speed-run's alternating flip (Jordan 2024, arXiv 2404.00498) ----------------------------------
class AlternatingFlip:
    """Deterministic flips: every image is mirrored in exactly every other epoch.

    Each image has a fixed pseudo-random coin; in epoch `e` it is mirrored when `coin XOR (e is odd)`.
    So in epoch 0 a random half is mirrored, and from then on every image alternates, which shows
    the net both orientations of every image in any two consecutive epochs (random flips repeat one
    orientation in about half of the pairs). The coin is a hash of the image's own values (integer
    arithmetic on the float bits: the same for any batch, order, layout or device), so the batched
    transform needs no sample index; it must therefore come first among the augmentations, before
    anything random changes the pixels. `seed` picks which half (None: drawn from torch's global
    generator, so `seed_everything` fixes it).

    The epoch comes from `set_epoch(e)`: `SpeedrunModule` calls it at the start of every training epoch
    (`src.models.speedrun_schedule.set_augmentation_epoch` reaches it through a `Compose`). With
    `data.loader=dataloader` the transform runs in worker processes, which do not see the call.
    """

    _PRIME = 1_000_003

    def __init__(self, seed: int | None = None) -> None:
        self.seed = int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else int(seed)
        self.epoch = 0
        self._weights: dict[tuple, torch.Tensor] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def coin(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) bool: the images mirrored in even epochs (a fixed function of each image's values)."""
        _check_batch(x, "AlternatingFlip")
        key = (tuple(x.shape[1:]), x.device)
        if key not in self._weights:
            generator = torch.Generator().manual_seed(self.seed)
            self._weights[key] = torch.randint(1, 2**16, key[0], generator=generator, dtype=torch.int64).to(x.device)
        bits = x.float().view(torch.int32) & 0xFFFF  # low mantissa bits; < 2**16 * 2**16 * C*H*W: no overflow
        h = (bits.long() * self._weights[key]).sum(dim=(1, 2, 3))
        return (h % self._PRIME) % 2 == 1

    def flips(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) bool: the images of `x` this transform mirrors in the current epoch."""
        return self.coin(x) ^ bool(self.epoch % 2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.flips(x).view(-1, 1, 1, 1), x.flip(-1), x)

    def __repr__(self) -> str:
        return f"AlternatingFlip(seed={self.seed}, epoch={self.epoch})"


__all__ += ["AlternatingFlip"]

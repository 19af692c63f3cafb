"""Transforms applied to whole batches of uint8 images (N, C, H, W), on whatever device they live."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class Normalize:
    """uint8 (or float) pixels in [0, max_value] -> float `(x / max_value - mean) / std` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], max_value: float = 255.0) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.max_value = float(max_value)
        # x * scale + shift, as a float32 copy scaled and shifted in place (on the CPU several times faster
        # than one broadcasting addcmul).
        self.scale = 1.0 / (self.max_value * self.std)
        self.shift = -self.mean / self.std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale.device != x.device:
            self.scale, self.shift = self.scale.to(x.device), self.shift.to(x.device)
        return x.to(torch.float32, copy=True).mul_(self.scale).add_(self.shift)

    def state(self) -> dict:
        """Plain values that rebuild this transform: `Normalize(**state)` (stored in checkpoints)."""
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist(), "max_value": self.max_value}

    def __repr__(self) -> str:
        mean, std = self.mean.flatten().tolist(), self.std.flatten().tolist()
        return f"Normalize(mean={mean}, std={std}, max={self.max_value})"


class Compose:
    """Apply batch transforms in order (None entries are skipped)."""

    def __init__(self, *transforms) -> None:
        self.transforms = [t for t in transforms if t is not None]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({', '.join(map(repr, self.transforms))})"

"""A net whose logits are divided by one temperature T (temperature scaling, Guo et al. 2017).

T > 1 softens over-confident probabilities, T < 1 sharpens them; the argmax, and so every predicted
class, stays the same. `src.calibrate` fits T; the checkpoint loader wraps the net in this module.
"""

from __future__ import annotations

import torch
from torch import nn


class TemperatureScaled(nn.Module):
    """`net(x) / temperature`: the wrapped net's logits scaled by a fixed temperature (a buffer, so it
    travels with the net into TorchScript and ONNX exports)."""

    def __init__(self, net: nn.Module, temperature: float | list[float]) -> None:
        super().__init__()
        value = torch.tensor(temperature, dtype=torch.float32)  # a list: one temperature per output (per label)
        if not bool((value > 0).all()):
            raise ValueError(f"the temperature must be positive, got {temperature!r}")
        self.net = net
        self.register_buffer("temperature", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) / self.temperature

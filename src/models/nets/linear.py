"""One linear layer: softmax regression (multi-class) and the perceptron (one output unit)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn


class LinearClassifier(nn.Module):
    """Flatten, then one `nn.Linear`: scores whose softmax (or sigmoid) the loss applies."""

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x):
        return self.linear(self.flatten(x))


def softmax_regression(input_shape: Sequence[int], num_classes: int) -> LinearClassifier:
    """Notes 0's iris model: one `nn.Linear(n_input, n_classes)`."""
    return LinearClassifier(input_shape, num_classes)


def perceptron(input_shape: Sequence[int]) -> LinearClassifier:
    """Notes 3's gate model: `nn.Linear(2, 1)`; the sigmoid belongs to the binary loss."""
    return LinearClassifier(input_shape, 1)

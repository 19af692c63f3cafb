"""Multi-layer perceptron on flattened input, with the knobs the course notes tune."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from src.errors import UserError

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
}
INITS = ("default", "xavier", "kaiming")


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> activation -> (Dropout)] per hidden size -> Linear.

    `hidden_sizes=[500, 400, 300, 200, 100, 50]` with `activation="leaky_relu"` is notes 3's deep
    MLP; `[10, 10, 10]` with sigmoid and `num_classes=1` (one logit, for a binary loss) is its XOR
    net. `output_softmax=True` reproduces notes 3's mistake of ending the net with softmax before a
    cross-entropy loss.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden_sizes: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "default",
        output_softmax: bool = False,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise UserError(f"activation {activation!r} is unknown; choose one of {sorted(ACTIVATIONS)}.")
        if init not in INITS:
            raise UserError(f"init {init!r} is unknown; choose one of {list(INITS)}.")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {dropout}.")
        if not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in hidden_sizes):
            raise UserError(f"hidden_sizes must be positive integers (layer widths, e.g. "
                             f"model.net.hidden_sizes=[128,64]), got {list(hidden_sizes)}.")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        if output_softmax:
            layers.append(nn.Softmax(dim=1))
        self.layers = nn.Sequential(*layers)
        self._init_weights(init, activation)

    def _init_weights(self, init: str, activation: str) -> None:
        if init == "default":
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if init == "xavier":
                    nn.init.xavier_uniform_(m.weight)
                else:
                    nonlinearity = "leaky_relu" if activation == "leaky_relu" else "relu"
                    nn.init.kaiming_normal_(m.weight, nonlinearity=nonlinearity)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.layers(x)

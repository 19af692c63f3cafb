"""Notes 3's activation functions with their derivatives (by autograd), and the vanishing-gradient
effect measured: per-layer gradient norms of a deep sigmoid MLP vs a ReLU MLP on real data. Also
notes 1's cross-entropy vs L1 curve (the loss that goes with the softmax output).

    python -m src.visualize activations                  # digits (offline); data=fashion_mnist works too
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from src.callbacks.gradient_norms import layer_gradient_norms
from src.figures.plots import new_figure
from src.models.nets.mlp import MLP
from src.teaching.data import load_datamodule
from src.teaching.losses import losses_figure

LEAKY_SLOPE = 0.1  # the notes' `a = 0.1` (PyTorch's default negative_slope is 0.01)

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "ReLU": F.relu,
    f"Leaky ReLU (a={LEAKY_SLOPE})": lambda x: F.leaky_relu(x, LEAKY_SLOPE),
    "softmax": lambda x: torch.softmax(x, dim=0),
}


def activation_curves(x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{name: (f(x), f'(x))} with the derivative computed by autograd. Softmax maps the whole vector
    x to probabilities (as the notes plot it); its derivative shown is the diagonal of the Jacobian,
    d softmax(x)_i / d x_i = s_i (1 - s_i)."""
    curves = {}
    for name, fn in ACTIVATIONS.items():
        xs = x.detach().clone().double().requires_grad_(True)
        if name == "softmax":
            y = fn(xs)
            jacobian = torch.autograd.functional.jacobian(fn, xs.detach())
            dy = jacobian.diagonal()
        else:
            y = fn(xs)
            (dy,) = torch.autograd.grad(y.sum(), xs)
        curves[name] = (y.detach(), dy.detach())
    return curves


def measure_gradient_norms(
    inputs: torch.Tensor, targets: torch.Tensor, activation: str, hidden: Sequence[int] = (64,) * 8,
    steps: int = 20, batch_size: int = 64, lr: float = 0.1, seed: int = 0,
) -> dict[str, float]:
    """Mean per-layer gradient norm (`layer_gradient_norms`) over `steps` SGD steps of an MLP with the
    given hidden sizes and activation (PyTorch's default initialisation) on (inputs, targets)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    num_classes = int(targets.max()) + 1
    net = MLP(input_shape=tuple(inputs.shape[1:]), num_classes=num_classes, hidden_sizes=list(hidden),
              activation=activation)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    sums: dict[str, float] = {}
    for _ in range(steps):
        index = torch.randint(0, len(targets), (batch_size,), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(inputs[index]), targets[index]).backward()
        for name, value in layer_gradient_norms(net).items():
            sums[name] = sums.get(name, 0.0) + value / steps
        optimizer.step()
    return sums


# --- figures ------------------------------------------------------------------------------------
def curves_figure(x: torch.Tensor, curves: dict[str, tuple[torch.Tensor, torch.Tensor]]):
    fig = new_figure(16, 3.8)
    axes = fig.subplots(1, len(curves))
    xs = x.numpy()
    for ax, (name, (y, dy)) in zip(axes, curves.items()):
        ax.plot(xs, y.numpy(), color="#1f77b4", linewidth=2, label="f(x)")
        ax.plot(xs, dy.numpy(), color="#d62728", linewidth=2, linestyle="--", label="f'(x) (autograd)")
        ax.axvline(0, color="grey", linestyle=":", linewidth=1)
        ax.axhline(0, color="grey", linewidth=0.5)
        peak = float(dy.max())
        ax.set_title(f"{name}\nlargest slope {peak:.3g}", fontsize=11)
        ax.set_xlabel("x")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("value")
    fig.suptitle("Activation functions (solid) and their derivatives (dashed), notes 3; "
                 "softmax is taken over the whole x vector, its curve is the Jacobian diagonal", fontsize=12)
    return fig


def gradient_norms_figure(norms: dict[str, dict[str, float]], caption: str):
    """Grouped bars (log scale): one group per layer, one bar per activation."""
    fig = new_figure(11, 5)
    ax = fig.subplots()
    names = list(next(iter(norms.values())))
    layers = np.arange(len(names))
    width = 0.8 / len(norms)
    colors = {"sigmoid": "#d62728", "relu": "#2ca02c", "tanh": "#1f77b4", "leaky_relu": "#9467bd"}
    titles = {"sigmoid": "sigmoid", "relu": "ReLU", "tanh": "tanh", "leaky_relu": "Leaky ReLU"}
    for k, (activation, values) in enumerate(norms.items()):
        heights = [values[n] for n in names]
        ratio = heights[-1] / max(heights[0], 1e-30)
        ax.bar(layers + (k - (len(norms) - 1) / 2) * width, heights, width, color=colors.get(activation),
               label=f"{titles.get(activation, activation)}: output layer's norm = {ratio:,.0f} x hidden 1's")
    labels = [f"hidden {i + 1}" for i in range(len(names) - 1)] + ["output"]
    ax.set_xticks(layers, labels)
    ax.set_yscale("log")
    ax.set_xlabel("layer (input side on the left)")
    ax.set_ylabel("gradient L2 norm (weights + bias), log scale")
    ax.grid(True, axis="y", alpha=0.3, which="both")
    ax.legend()
    ax.set_title(f"Vanishing gradients, measured: {caption}", fontsize=11)
    return fig


def render(cfg, output) -> None:
    x = torch.arange(-5.0, 5.0, 0.1, dtype=torch.float64)  # the notes' np.arange(-5.0, 5.0, 0.1)
    output.figure("activations", curves_figure(x, activation_curves(x)))
    output.figure("cross_entropy_vs_l1", losses_figure())

    datamodule = load_datamodule(cfg.data)
    train = datamodule.train_split
    inputs = datamodule.transform(train.inputs) if datamodule.transform else train.inputs.float()
    steps = int(cfg.get("steps") or 20)
    hidden = [64] * 8
    norms = {a: measure_gradient_norms(inputs, train.targets, a, hidden, steps=steps, seed=int(cfg.seed))
             for a in ("sigmoid", "relu")}
    caption = (f"MLP with {len(hidden)} hidden layers of {hidden[0]} on {datamodule.name}, mean over the first "
               f"{steps} SGD steps (lr 0.1, batch 64)")
    output.figure("vanishing_gradients", gradient_norms_figure(norms, caption))

"""Per-layer gradient norms during training: the vanishing-gradient effect, measured (notes 3).

`layer_gradient_norms(module)` is the computation: for every layer that owns parameters (a
`Linear`, a `Conv2d`, a `BatchNorm`, ...), the L2 norm of the gradients of all its parameters
together, keyed by the layer's name in the module (`net.layers.1`). `python -m src.visualize
activations` uses it to compare a deep sigmoid MLP with a ReLU one; `GradientNormLogger` logs it
as `grad_norm/<layer>` scalars during any run (enable with `callbacks=[default,gradient_norms]`).

(Lightning's `lightning.pytorch.utilities.grad_norm` gives one norm per parameter tensor; a layer's
weight and bias together are what the vanishing-gradient picture needs.)
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from src.errors import require


def layer_gradient_norms(module: nn.Module, norm_type: float = 2.0) -> dict[str, float]:
    """{layer name: norm of its parameters' gradients}, in the module's order; layers whose
    parameters have no gradient (frozen, or not used in the last backward pass) are left out."""
    norms: dict[str, float] = {}
    for name, layer in module.named_modules():
        grads = [p.grad.detach().float().flatten() for p in layer.parameters(recurse=False) if p.grad is not None]
        if grads:
            norms[name or type(module).__name__] = float(torch.linalg.vector_norm(torch.cat(grads), norm_type))
    return norms


class GradientNormLogger(L.Callback):
    """Logs `grad_norm/<layer>` (see `layer_gradient_norms`) at optimizer steps 0, N, 2N, ...
    (`every_n_steps`), to every logger (TensorBoard SCALARS, CSV), with the optimizer step as x-axis.

    The gradients are read in `on_before_optimizer_step`: after mixed-precision unscaling, before the
    update, at every optimizer step in both optimisation modes (also `steps_per_call > 1`).
    """

    def __init__(self, every_n_steps: int = 50, norm_type: float = 2.0) -> None:
        require(
            isinstance(every_n_steps, int) and every_n_steps > 0,
            f"callbacks.gradient_norms.every_n_steps must be a positive integer, got {every_n_steps!r}.",
        )
        self.every_n_steps = every_n_steps
        self.norm_type = float(norm_type)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        step = trainer.global_step  # the 0-based index of the step about to be taken
        if step % self.every_n_steps or not trainer.is_global_zero or not trainer.loggers:
            return
        norms = layer_gradient_norms(pl_module, self.norm_type)
        if not norms:
            return
        metrics = {f"grad_norm/{name}": value for name, value in norms.items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

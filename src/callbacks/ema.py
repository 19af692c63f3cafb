"""Exponential moving average (EMA) of the weights: validated, tested and checkpointed in their place.

This callback hooks the optimizer itself (`register_step_post_hook`), so the average is updated
after every optimizer step that is taken, with or without mixed precision (a step the gradient
scaler skips is not averaged either), also with `steps_per_call > 1`. The update is one fused
`_foreach_lerp_` on the device: no host sync.

With the default one optimizer step per Lightning step, Lightning's own `EMAWeightAveraging`
(`lightning.pytorch.callbacks`, Lightning 2.6 and later) works with this template too (tested). This
callback stays the template's choice because it also runs on Lightning 2.5, has the warmup below,
keeps the raw training weights in the checkpoint so that a resumed run continues exactly, and
counts every optimizer step with `steps_per_call > 1` (Lightning's updates once per
`training_step` call).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from src.errors import require


class EMA(L.Callback):
    """ema <- d * ema + (1 - d) * w after every optimizer step, for every parameter and floating-point
    buffer (batch-norm statistics; integer buffers are copied).

    With `warmup`, the n-th update (n = 0, 1, ...) uses d_n = min(decay, (1 + n) / (10 + n)), so short
    runs and the first steps are not dominated by the random initial weights.

    Validation runs on the EMA weights (so `val/acc`, early stopping and the best checkpoint judge
    them); every checkpoint's `state_dict` holds the EMA weights (so `src.eval`, testing with the best
    checkpoint and predictions use them), and the callback's state holds the raw training weights,
    so that `ckpt_path=...` resumes training exactly. When training ends the module keeps the EMA
    weights.
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True) -> None:
        require(0.0 < decay < 1.0, f"callbacks.ema.decay must be between 0 and 1 (e.g. 0.999), got {decay!r}.")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self._names: list[str] = []
        self._live: list[torch.Tensor] = []  # the module's parameters and buffers (state_dict order)
        self._ema: list[torch.Tensor] = []
        self._backup: list[torch.Tensor] | None = None  # training weights while the EMA weights are swapped in
        self._handles: list[Any] = []
        self._resumed: dict[str, Any] | None = None

    # --- the average -------------------------------------------------------------------------------
    def decay_at(self, n: int) -> float:
        """The decay of update number n (0-based)."""
        return min(self.decay, (1.0 + n) / (10.0 + n)) if self.warmup else self.decay

    def attach(self, module: torch.nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
        """Start averaging `module` (from its current weights) after every step of `optimizers`."""
        self.detach()
        state = module.state_dict(keep_vars=True)
        self._names = list(state)
        self._live = [t.detach() for t in state.values()]
        self._ema = [t.clone() for t in self._live]
        self._backup = None
        floats = [i for i, t in enumerate(self._live) if t.is_floating_point()]
        others = [i for i, t in enumerate(self._live) if not t.is_floating_point()]
        self._float_pairs = ([self._ema[i] for i in floats], [self._live[i] for i in floats])
        self._other_pairs = [(self._ema[i], self._live[i]) for i in others]
        self._handles = [opt.register_step_post_hook(self._after_step) for opt in optimizers]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.update()

    @torch.no_grad()
    def update(self) -> None:
        weight = 1.0 - self.decay_at(self.num_updates)
        ema, live = self._float_pairs
        if ema:
            torch._foreach_lerp_(ema, live, weight)
        for e, t in self._other_pairs:
            e.copy_(t)
        self.num_updates += 1

    @torch.no_grad()
    def swap_in(self) -> None:
        """Put the EMA weights into the module (keeping the training weights aside)."""
        if self._backup is not None or not self._ema:
            return
        self._backup = [t.clone() for t in self._live]
        for t, e in zip(self._live, self._ema):
            t.copy_(e)

    @torch.no_grad()
    def swap_out(self) -> None:
        """Put the training weights back."""
        if self._backup is None:
            return
        for t, b in zip(self._live, self._backup):
            t.copy_(b)
        self._backup = None

    def _ema_and_training(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        swapped = self._backup is not None
        return (self._live, self._backup) if swapped else (self._ema, self._live)  # type: ignore[return-value]

    # --- Lightning hooks ---------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.attach(pl_module, list(trainer.optimizers))  # the module holds the checkpoint's EMA weights on resume
        if self._resumed is not None:
            self.num_updates = int(self._resumed["num_updates"])
            training = self._resumed["training_weights"]
            with torch.no_grad():
                for name, t in zip(self._names, self._live):
                    if name in training:
                        t.copy_(training[name])
            self._resumed = None
        else:
            self.num_updates = 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self.swap_in()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self.swap_out()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.swap_in()  # the run's final weights are the average
        self.detach()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.detach()

    def state_dict(self) -> dict[str, Any]:
        if not self._ema:
            return {}
        _, training = self._ema_and_training()
        return {
            "num_updates": self.num_updates,
            "training_weights": {name: t.detach().clone() for name, t in zip(self._names, training)},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resuming: applied in `on_fit_start`, once the optimizers exist."""
        self._resumed = dict(state_dict) if state_dict else None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if not self._ema:
            return
        ema, _ = self._ema_and_training()
        state = checkpoint["state_dict"]
        for name, t in zip(self._names, ema):
            if name in state:
                state[name] = t.detach().clone()

    def __repr__(self) -> str:
        return f"EMA(decay={self.decay}, warmup={self.warmup})"

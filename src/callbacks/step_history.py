"""Learning curves at a many-step recipe's own resolution, without a Lightning epoch per point.

The course notes keep a history row every N full-batch steps (iris: every 10 of 10,000 steps; the gates
and XOR: every 100): the loss and accuracy of that step's training batch, and the validation loss
and accuracy after its update. One Lightning epoch per row (a validation loop, metric logging and
every callback's epoch hooks) costs milliseconds, many times the step itself, so such a run spends
most of its time in the framework. `StepHistory` records the rows inside training instead: after
every N-th optimizer step (a hook on the optimizer, so in both of the module's optimisation modes,
also K steps per call), kept on the device and sent to the loggers once per epoch as `train/loss`,
`train/acc`, `val/loss` and `val/acc` at their optimizer step. Epochs can then be long (e.g. 1,000
steps), with the full validation, checkpoints and early stopping once per epoch.

It works with a `ClassificationModule`, through the interface that module documents: the row's
training values are its `train_sums.last`, and it declares `logs_training_curves`, which
the module reads when fitting starts: the module then sends its epoch-level values of those four
curves to no logger (they still drive checkpoints, early stopping, the progress bar and the final
metrics), so every curve has exactly one point per row. Under distributed training the rows are rank 0's share.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from src.errors import require
from src.models.classifier import ClassificationModule

CURVES = ("train/loss", "train/acc", "val/loss", "val/acc")


class StepHistory(L.Callback):
    """Log the four learning curves every `every_n_steps` optimizer steps (steps 0, N, 2N, ...)."""

    logs_training_curves = True  # read by ClassificationModule: it leaves these curves' loggers to this callback

    def __init__(self, every_n_steps: int = 10) -> None:
        require(
            isinstance(every_n_steps, int) and not isinstance(every_n_steps, bool) and every_n_steps > 0,
            f"callbacks.step_history.every_n_steps must be a positive integer, got {every_n_steps!r}.",
        )
        self.every_n_steps = every_n_steps
        self._rows: list[torch.Tensor] = []
        self._steps: list[int] = []
        self._handles: list[Any] = []
        self._val_loader: Any = None

    # --- Lightning hooks ---------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        require(
            isinstance(pl_module, ClassificationModule),
            f"callbacks.step_history records the training batches of a ClassificationModule, not of "
            f"{type(pl_module).__name__}; switch the callback off (callbacks.step_history=null).",
        )

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._detach()
        # The data module's validation loader, built once (Lightning builds its own at the first validation).
        datamodule = trainer.datamodule
        self._val_loader = datamodule.val_dataloader() if datamodule is not None else trainer.val_dataloaders
        require(
            self._val_loader is not None,
            "callbacks.step_history needs validation data; give the data module a validation split or switch "
            "the callback off (callbacks.step_history=null).",
        )
        for optimizer in trainer.optimizers:
            hook = lambda *_, trainer=trainer, pl_module=pl_module: self._after_step(trainer, pl_module)  # noqa: E731
            self._handles.append(optimizer.register_step_post_hook(hook))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        self._detach()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._flush(trainer)  # an interrupted run keeps the curve up to its last step
        self._detach()

    # --- the rows ----------------------------------------------------------------------------------
    def _after_step(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step  # Lightning counts the step after this hook: 0-based index of this one
        batch = pl_module.train_sums.last
        if step % self.every_n_steps or batch is None or trainer.sanity_checking:
            return
        val_loss, val_acc = self._validate(trainer, pl_module)
        self._rows.append(torch.stack([batch.loss.float(), batch.correct.float() / batch.size, val_loss, val_acc]))
        self._steps.append(step)

    @torch.no_grad()
    def _validate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and accuracy on the validation split with the current weights (eval mode)."""
        was_training = pl_module.training
        pl_module.eval()
        loss_sum = torch.zeros((), device=pl_module.device)
        correct = torch.zeros((), device=pl_module.device)
        count = 0
        try:
            for x, y in self._val_loader:
                x, y = x.to(pl_module.device), y.to(pl_module.device)
                with trainer.precision_plugin.forward_context():
                    outputs = pl_module.eval_outputs(trainer.precision_plugin.convert_input(x))
                loss_sum += pl_module.compute_loss(outputs, y).float() * len(y)
                correct += (pl_module.class_scores(outputs).argmax(1) == y).sum()
                count += len(y)
        finally:
            pl_module.train(was_training)
        return loss_sum / max(count, 1), correct / max(count, 1)

    def _flush(self, trainer: L.Trainer) -> None:
        """Send the rows kept so far to every logger (one host sync for all of them)."""
        if not self._rows:
            return
        rows, steps = torch.stack(self._rows).tolist(), self._steps
        self._rows, self._steps = [], []
        if not trainer.is_global_zero or trainer.fast_dev_run:
            return
        for logger in trainer.loggers:
            for step, values in zip(steps, rows):
                logger.log_metrics(dict(zip(CURVES, values)), step=step)
            logger.save()

    def _detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __repr__(self) -> str:
        return f"StepHistory(every_n_steps={self.every_n_steps})"

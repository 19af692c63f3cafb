"""What `ClassificationModule` counts over an epoch, kept on the device with no host sync per step.

- `TrainingSums`: the training epoch so far (the batches' losses weighted by their sizes, the correct
  predictions, the sample count) and the last optimizer step's batch, which per-step callbacks read;
  its `state()` goes into checkpoints, so a run resumed mid-epoch logs that epoch's `train/loss` over
  all its batches. Plain tensors rather than torchmetrics: a step's update is two in-place adds.
- `EvalMetrics`: one validation or test pass, a torchmetrics `MulticlassConfusionMatrix` (accuracy and
  macro precision / recall / F1 are read off it, src/models/metrics.py), top-5 accuracy beyond ten
  classes (CIFAR-100), and the loss sum. torchmetrics syncs the matrix across processes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from src.errors import UserError
from src.models.metrics import metrics_from_confusion


class TrainingBatch(NamedTuple):
    """The training batch of the last optimizer step, as the module scored it: its mean loss (without
    the L1 penalty) and its number of correct predictions, both 0-dim tensors on the device (reading
    them needs no host sync until a value is wanted), and its size."""

    loss: torch.Tensor
    correct: torch.Tensor
    size: int


class TrainingSums:
    """The training epoch so far; a plain object, so that a step's updates skip `nn.Module.__setattr__`."""

    __slots__ = ("loss_sum", "correct", "count", "last")

    def __init__(self, device: torch.device, state: dict[str, Any] | None = None) -> None:
        """Empty sums on `device`, or those of a checkpoint's `state()` (a resumed epoch continues)."""
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.count = 0
        self.last: TrainingBatch | None = None
        if state:
            self.loss_sum.copy_(state["loss"])
            self.correct.copy_(state["correct"])
            self.count = int(state["count"])

    def add(self, loss: torch.Tensor, correct: torch.Tensor, size: int) -> None:
        self.loss_sum.add_(loss, alpha=size)
        self.correct.add_(correct)
        self.count += size
        self.last = TrainingBatch(loss, correct, size)

    def means(self) -> dict[str, torch.Tensor]:
        """{"train/loss", "train/acc"} of the epoch so far (empty before its first batch)."""
        if not self.count:
            return {}
        return {"train/loss": self.loss_sum / self.count, "train/acc": self.correct.float() / self.count}

    def stop_if_not_finite(self, epoch: int, step: int, lr: float) -> None:
        """One sentence when the epoch's loss is NaN or infinite (one host sync)."""
        if self.count and not torch.isfinite(self.loss_sum):
            raise UserError(
                f"the training loss became {float(self.loss_sum / self.count)} in epoch {epoch} (step {step}); "
                f"the run stopped: lower the learning rate (optimizer.lr={lr} now, try {lr / 10:g})."
            )

    def state(self) -> dict[str, Any]:
        """Plain CPU values for a checkpoint."""
        return {"loss": self.loss_sum.detach().cpu(), "correct": self.correct.cpu(), "count": self.count}


class EvalMetrics(nn.Module):
    """One validation or test pass. A module, so that its torchmetrics move with the LightningModule;
    their states are not persistent, so checkpoints hold none of them."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.confusion = MulticlassConfusionMatrix(num_classes=num_classes)
        self.top5 = MulticlassAccuracy(num_classes, top_k=5, average="micro", validate_args=False) \
            if num_classes > 10 else None
        self.loss_sum: torch.Tensor | float = 0.0
        self.count = 0

    def update(self, loss: torch.Tensor, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch: its mean loss, its (N, C) class scores and (N,) targets."""
        self.loss_sum = self.loss_sum + loss.detach() * len(targets)
        self.count += len(targets)
        self.confusion.update(scores, targets)
        if self.top5 is not None:
            self.top5.update(scores, targets)

    def log_to(self, module: L.LightningModule, prefix: str, curves_to_loggers: bool = True) -> torch.Tensor:
        """Log the pass's `<prefix>/loss`, acc, precision, recall, f1 (and acc_top5) with `module.log`;
        return its confusion matrix on the CPU. `val/loss` and `val/acc` are shown on the progress bar and,
        with `curves_to_loggers=False` (a per-step history logs these curves), sent to no logger."""
        values, matrix = self.compute(prefix)
        shown = {f"{prefix}/acc", f"{prefix}/loss"} if prefix == "val" else set()
        for key, value in values.items():
            module.log(key, value, prog_bar=key in shown, sync_dist=key.endswith("/loss"),
                       logger=False if key in shown and not curves_to_loggers else None)
        return matrix.cpu()

    def compute(self, prefix: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """({`<prefix>/acc`, precision, recall, f1, loss, acc_top5}, the confusion matrix) of the pass;
        the sums start again."""
        matrix = self.confusion.compute()
        metrics = {f"{prefix}/{k}": v for k, v in metrics_from_confusion(matrix).items()}
        if self.top5 is not None:
            metrics[f"{prefix}/acc_top5"] = self.top5.compute()
        if self.count:
            metrics[f"{prefix}/loss"] = self.loss_sum / self.count
        self.reset()
        return metrics, matrix

    def reset(self) -> None:
        self.confusion.reset()
        if self.top5 is not None:
            self.top5.reset()
        self.loss_sum, self.count = 0.0, 0

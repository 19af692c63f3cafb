"""The training logic: `ClassificationModule` (loss, steps, epoch metrics, optimizer, lr schedule, checkpoint
state) around a plain `nn.Module` net rebuilt from plain hyper-parameters, so checkpoints load with
`weights_only=True`. Options off by default import their code (tricks, losses, schedulers, finetune) when on."""

from __future__ import annotations

from typing import Any, NamedTuple

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import get_object, instantiate
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from src.errors import UserError, require

TRICKS = ("label_smoothing", "mixup_alpha", "cutmix_alpha", "tta_flip")  # training tricks: all off by default


class ClassificationModule(L.LightningModule):
    """Multi-class classification with cross-entropy (or an equivalent formulation) and optional L1.

    Logs `train/loss`, `train/acc` per epoch; `val/` and `test/` loss, acc, balanced_acc, macro precision, recall, f1
    (acc_top5 beyond ten classes); `val/acc_best`. A NaN/inf epoch loss stops the run in one sentence. A family
    that trains differently subclasses it (binary.py, googlenet_module.py), passes the base's arguments on with
    `**kwargs`, and overrides `check_task`, `compute_loss`, `training_loss`, `class_scores`, `predicted_classes`,
    `probabilities` or `eval_outputs`. Callbacks read `train_sums.last`, `val_confusion_matrix`,
    `test_confusion_matrix`; one with `logs_training_curves = True` logs the loss and acc curves itself.
    """

    def __init__(self, net: dict[str, Any], num_classes: int, optimizer: dict[str, Any],
                 scheduler: dict[str, Any] | None = None, loss: str = "cross_entropy", l1: float = 0.0,
                 label_smoothing: float = 0.0, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 tta_flip: bool = False, stop_on_non_finite_loss: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["stop_on_non_finite_loss"], logger=False)  # loggers: src/runs/loggers.py
        lr = optimizer.get("lr")
        require(isinstance(lr, (int, float)) and lr > 0,
                f"optimizer.lr must be a positive number, got {lr!r}; try e.g. optimizer.lr=0.01.")
        require(l1 >= 0, f"model.l1 must be >= 0, got {l1}.")
        if optimizer.get("backbone_lr_scale", 1.0) != 1:
            from src.models import finetune
            finetune.check_backbone_lr_scale(optimizer, scheduler)
        self.check_task()
        self.tricks = None
        if any(map(self.hparams.get, TRICKS)):
            from src.models.tricks import Tricks
            self.tricks = Tricks(self.hparams)
        if self.uses_scheduler:
            from src.models import schedulers
            schedulers.check_scheduler(scheduler)
        arguments = {k: v for k, v in net.items() if k != "_target_"}  # a net's own errors reach the caller as they are
        self.net, self.num_classes = get_object(net["_target_"])(**arguments), num_classes
        self.val_metrics, self.test_metrics = EvalMetrics(num_classes), EvalMetrics(num_classes)
        self.stop_on_non_finite_loss = stop_on_non_finite_loss
        self.val_acc_best = 0.0
        self.val_confusion_matrix = self.test_confusion_matrix = None  # the last passes' (for callbacks)
        self.epoch_curves_to_loggers = True
        self.train_sums = TrainingSums(self.device)  # its `last` step's batch: for per-step callbacks
        self._train_sums_to_restore: dict[str, Any] | None = None  # from a checkpoint, until training starts
        if net.get("input_shape"):  # TensorBoard's GRAPHS tab and the summary's in/out sizes
            self.example_input_array = torch.zeros(1, *(int(d) for d in net["input_shape"]))

    def check_task(self) -> None:
        losses = ("cross_entropy", "log_softmax_nll", "softmax_log_nll")  # one loss written three ways (losses.py)
        require(self.hparams.loss in losses, f"model.loss={self.hparams.loss!r} is unknown; choose one of {losses}.")
        require(self.hparams.num_classes >= 2, f"num_classes must be at least 2, got {self.hparams.num_classes}.")

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of class-index (N,) or soft (N, C) targets; label smoothing only in training (comparable val loss)."""
        smoothing = self.hparams.label_smoothing if self.training else 0.0
        if self.hparams.loss == "cross_entropy":
            return F.cross_entropy(outputs, targets, label_smoothing=smoothing)
        from src.models import losses
        return losses.MULTICLASS_LOSSES[self.hparams.loss](outputs, targets, smoothing)

    def training_loss(self, outputs: Any, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, loss) of the net's training-mode output."""
        return outputs, self.compute_loss(outputs, targets)

    def class_scores(self, outputs: torch.Tensor) -> torch.Tensor:
        """(N, num_classes) scores whose argmax is the prediction (for metrics)."""
        return outputs

    def predicted_classes(self, outputs: torch.Tensor) -> torch.Tensor:  # a cheaper form where there is one
        return self.class_scores(outputs).argmax(1)

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.class_scores(outputs).float(), dim=1)

    def eval_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """What validation and test score: the logits (with tta_flip the flip-averaged log-probabilities)."""
        return self.tricks.eval_outputs(self.net, x) if self.tricks else self.net(x)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.probabilities(self.eval_outputs(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.epoch_curves_to_loggers = not any(getattr(c, "logs_training_curves", False)
                                                   for c in self.trainer.callbacks)

    def on_train_start(self) -> None:
        sums, self._train_sums_to_restore = self._train_sums_to_restore, None
        if sums:  # resumed: the checkpoint's epoch continues (a new epoch resets them in on_train_epoch_start)
            self.train_sums = TrainingSums(self.device, sums)

    def on_train_epoch_start(self) -> None:
        self.train_sums = TrainingSums(self.device)

    def step_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step's loss on (x, y), L1 included, counted in the epoch's sums (mixed: the dominant class)."""
        if self.tricks is not None:
            x, y = self.tricks.mix(x, y)  # soft targets (N, num_classes) when mixing
        logits, loss = self.training_loss(self.net(x), y)
        labels = y.argmax(1) if y.ndim > 1 else y
        self.train_sums.add(loss.detach(), (self.predicted_classes(logits.detach()) == labels).sum(), len(y))
        weights = [p.abs().sum() for p in self.net.parameters() if p.ndim > 1] if self.hparams.l1 else []
        return loss + self.hparams.l1 * torch.stack(weights).sum() if weights else loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.step_loss(*batch)

    def on_train_epoch_end(self) -> None:
        self._stop_if_loss_is_not_finite()
        for key, value in self.train_sums.means().items():
            self.log(key, value, prog_bar=True, sync_dist=True, logger=None if self.epoch_curves_to_loggers else False)

    def _stop_if_loss_is_not_finite(self) -> None:
        """A NaN/inf training loss ends the run before validation: no checkpoint of the broken model is written."""
        sums = self.train_sums
        if self.stop_on_non_finite_loss and sums.count and not torch.isfinite(sums.loss_sum):
            lr = self.hparams.optimizer["lr"]
            raise UserError(f"the training loss became {float(sums.loss_sum / sums.count)} in epoch "
                            f"{self.current_epoch} (step {self.trainer.global_step}); the run stopped: lower the "
                            f"learning rate (optimizer.lr={lr} now, try {lr / 10:g}).")

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], metrics: EvalMetrics) -> torch.Tensor:
        outputs = self.eval_outputs(batch[0])
        metrics.update(self.compute_loss(outputs, batch[1]), self.class_scores(outputs), batch[1])
        return outputs

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self._stop_if_loss_is_not_finite()
        self.val_metrics.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self.val_confusion_matrix = self.val_metrics.log_to(self, "val", self.epoch_curves_to_loggers)
        if not self.trainer.sanity_checking:
            self.val_acc_best = max(self.val_acc_best, float(self.trainer.callback_metrics["val/acc"]))
        self.log("val/acc_best", self.val_acc_best)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return {"probabilities": self.probabilities(self._eval_step(batch, self.test_metrics)).detach()}

    def on_test_epoch_end(self) -> None:
        self.test_confusion_matrix = self.test_metrics.log_to(self, "test", self.epoch_curves_to_loggers)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.predict_proba(batch[0] if isinstance(batch, (tuple, list)) else batch)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["val_acc_best"] = self.val_acc_best
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}  # the same dropout masks and augmentations
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["train_epoch_sums"] = self.train_sums.state()  # a run resumed mid-epoch logs the whole epoch

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.val_acc_best = float(checkpoint.get("val_acc_best", 0.0))
        self._train_sums_to_restore = checkpoint.get("train_epoch_sums")  # set on the device in on_train_start
        states = checkpoint.get("rng_states") or {}
        if "torch" in states:
            torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states["cuda"])

    @property
    def uses_scheduler(self) -> bool:
        cfg = self.hparams.scheduler or {}
        return "_target_" in cfg or bool(cfg.get("warmup_steps") or cfg.get("warmup_epochs"))

    def optimizer_steps_per_epoch(self) -> int | float:  # (Lightning counts calls of training_step)
        return -(-self.trainer.num_training_batches // max(self.trainer.accumulate_grad_batches, 1))

    def planned_optimizer_steps(self) -> int | float:
        return self.trainer.estimated_stepping_batches

    def configure_optimizers(self) -> Any:
        """The optimizer (decay_bias_and_norm=false: no decay on 1-d parameters) and lr schedule (schedulers.py)."""
        cfg = dict(self.hparams.optimizer)
        decay_all, scale = cfg.pop("decay_bias_and_norm", True), cfg.pop("backbone_lr_scale", 1.0)
        params: Any = self.net.parameters()
        if not decay_all:
            params = [{"params": [p for p in self.net.parameters() if p.ndim > 1]},
                      {"params": [p for p in self.net.parameters() if p.ndim <= 1], "weight_decay": 0.0}]
        if scale != 1:
            from src.models import finetune
            params = finetune.scale_backbone_lr(params, self.net, cfg["lr"], scale)
        optimizer = instantiate(cfg)(params=[g for g in params if not isinstance(g, dict) or g["params"]])
        if not self.uses_scheduler:
            return optimizer
        from src.models import schedulers
        schedule = schedulers.build_scheduler(self.hparams.scheduler, optimizer, self.planned_optimizer_steps)
        return {"optimizer": optimizer, "lr_scheduler": schedule}


class TrainingBatch(NamedTuple):
    """The last optimizer step's batch: mean loss (without L1), correct predictions (0-dim tensors on the device)."""
    loss: torch.Tensor
    correct: torch.Tensor
    size: int


class TrainingSums:
    """The training epoch so far, on the device (a step adds in place: no host sync); its `state()` goes into
    checkpoints, so a run resumed mid-epoch logs the whole epoch's `train/loss`."""

    def __init__(self, device: torch.device, state: dict[str, Any] | None = None) -> None:
        state = state or {"loss": 0.0, "correct": 0, "count": 0}
        self.loss_sum = torch.as_tensor(state["loss"], dtype=torch.float32).clone().to(device)
        self.correct = torch.as_tensor(state["correct"], dtype=torch.long).clone().to(device)
        self.count, self.last = int(state["count"]), None

    def add(self, loss: torch.Tensor, correct: torch.Tensor, size: int) -> None:
        self.loss_sum.add_(loss, alpha=size)
        self.correct.add_(correct)
        self.count += size
        self.last = TrainingBatch(loss, correct, size)

    def means(self) -> dict[str, torch.Tensor]:
        n = self.count
        return {"train/loss": self.loss_sum / n, "train/acc": self.correct.float() / n} if n else {}

    def state(self) -> dict[str, Any]:
        return {"loss": self.loss_sum.detach().cpu(), "correct": self.correct.cpu(), "count": self.count}


class EvalMetrics(nn.Module):
    """One evaluation pass: a torchmetrics confusion matrix (metrics read off it), top-5 beyond ten classes."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.confusion = MulticlassConfusionMatrix(num_classes=num_classes)
        self.top5 = MulticlassAccuracy(num_classes, top_k=5, average="micro", validate_args=False) \
            if num_classes > 10 else None
        self.reset()

    def update(self, loss: torch.Tensor, scores: torch.Tensor, targets: torch.Tensor) -> None:
        self.loss_sum = self.loss_sum + loss.detach() * len(targets)
        self.count += len(targets)
        self.confusion.update(scores, targets)
        if self.top5 is not None:
            self.top5.update(scores, targets)

    def log_to(self, module: L.LightningModule, prefix: str, curves_to_loggers: bool = True) -> torch.Tensor:
        """Log `<prefix>/loss`, acc, balanced_acc, precision, recall, f1 (and acc_top5); the confusion matrix (CPU).
        `val/loss` and `val/acc` go to the progress bar, and to no logger when `curves_to_loggers` is False."""
        matrix = self.confusion.compute()
        values = {f"{prefix}/{k}": v for k, v in metrics_from_confusion(matrix).items()}
        if self.top5 is not None:
            values[f"{prefix}/acc_top5"] = self.top5.compute()
        if self.count:
            values[f"{prefix}/loss"] = self.loss_sum / self.count
        shown = {f"{prefix}/acc", f"{prefix}/loss"} if prefix == "val" else set()
        for key, value in values.items():
            module.log(key, value, prog_bar=key in shown, sync_dist=key.endswith("/loss"),
                       logger=False if key in shown and not curves_to_loggers else None)
        self.reset()
        return matrix.cpu()

    def reset(self) -> None:
        self.confusion.reset()
        if self.top5 is not None:
            self.top5.reset()
        self.loss_sum, self.count = 0.0, 0


def metrics_from_confusion(matrix: torch.Tensor) -> dict[str, torch.Tensor]:
    """acc, macro precision, recall, F1 of a (true x predicted) count matrix as torchmetrics' "macro" (0 for an
    empty denominator; classes in neither targets nor predictions left out); balanced_acc: mean recall of targets."""
    m = matrix.double()
    tp, predicted, actual = m.diagonal(), m.sum(0), m.sum(1)
    ratio = lambda num, den: torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))  # noqa: E731
    present = ((predicted + actual) > 0).double()
    weight = present / present.sum().clamp(min=1)
    out = {"acc": ratio(tp.sum(), m.sum()), "precision": (ratio(tp, predicted) * weight).sum(),
           "recall": (ratio(tp, actual) * weight).sum(), "f1": (ratio(2 * tp, predicted + actual) * weight).sum(),
           "balanced_acc": ratio(tp, actual).sum() / (actual > 0).sum().clamp(min=1)}
    return {k: v.float() for k, v in out.items()}

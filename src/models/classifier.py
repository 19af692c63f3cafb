"""LightningModules: the training logic (loss, metrics, optimisation) around a plain `nn.Module` net.

Hyper-parameters are plain values (the resolved config), and the net is rebuilt from them: a
checkpoint loads with `weights_only=True` and needs nothing but this file to be evaluated.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from src.errors import UserError, require
from src.models import steps_per_call as multi_step
from src.models.losses import MULTICLASS_LOSSES, binary_cross_entropy
from src.models.metrics import metrics_from_confusion
from src.models.recipes import (
    BatchMixer,
    build_scheduler,
    check_scheduler,
    flip_tta_log_probs,
    optimizer_parameters,
    scheduler_interval,
)

RECIPE_KEYS = ("label_smoothing", "mixup_alpha", "cutmix_alpha", "tta_flip")


def build_net(net: dict[str, Any]) -> nn.Module:
    """Instantiate a net from its config dict; bad arguments become one-sentence user errors."""
    try:
        return instantiate(net, _convert_="all")
    except InstantiationException as exc:  # Hydra wraps the net's own exception
        if isinstance(exc.__cause__, ValueError):
            raise UserError(str(exc.__cause__).rstrip(".") + ".") from exc.__cause__
        raise


class TrainingBatch(NamedTuple):
    """The training batch of the last optimizer step, as the module scored it: its mean loss (without
    the L1 penalty) and its number of correct predictions, both 0-dim tensors on the device (reading
    them needs no host sync until a value is wanted), and its size."""

    loss: torch.Tensor
    correct: torch.Tensor
    size: int


class EpochSums:
    """The training epoch so far, kept on the device (no torchmetrics update and no host sync per step):
    the sum of the batches' losses weighted by their sizes, the correct predictions, the sample count,
    and the last batch. A plain object, so that a step's updates skip `nn.Module.__setattr__`."""

    __slots__ = ("loss_sum", "correct", "count", "last")

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.count = 0
        self.last: TrainingBatch | None = None

    def add(self, loss: torch.Tensor, correct: torch.Tensor, size: int) -> None:
        self.loss_sum.add_(loss, alpha=size)
        self.correct.add_(correct)
        self.count += size
        self.last = TrainingBatch(loss, correct, size)


class ClassificationModule(L.LightningModule):
    """Multi-class classification: one of three equivalent cross-entropy formulations, optional L1.

    Logs `train/loss`, `train/acc` per epoch; `val/loss`, `val/acc`, `val/acc_best`, macro
    `val/precision|recall|f1`; the same under `test/` plus a confusion matrix at test time; with
    more than 10 classes also `val/acc_top5` and `test/acc_top5`.

    Recipes (all off by default, see docs/recipes.md): `label_smoothing` of the training loss;
    `mixup_alpha` / `cutmix_alpha` mix training batches and their targets (train/acc then counts the
    argmax of the mixed target as the label); `tta_flip` averages the softmax of x and its mirror
    image in validation, test and prediction. val/test losses are always the plain cross-entropy.

    `steps_per_call` (the training setting `steps_per_call`, default 1): 1 is Lightning's automatic optimisation,
    one `(x, y)` batch per `training_step`; K > 1 takes K optimizer steps per `training_step` from a
    list of K batches (src/models/steps_per_call.py says which hooks then fire per call).

    For callbacks that record values per optimizer step (`StepHistory`):
    - `last_training_batch` (a `TrainingBatch`, or None before an epoch's first step) is the batch of the
      last optimizer step, set before its backward pass, in both optimisation modes;
    - a callback that logs `train/loss`, `train/acc`, `val/loss` and `val/acc` itself, at a finer
      resolution, declares `logs_training_curves = True`; the module then sends its epoch values of
      these four curves to no logger while fitting (they still reach the progress bar, checkpoints,
      early stopping and the run's final metrics).
    """

    def __init__(
        self,
        net: dict[str, Any],
        num_classes: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        loss: str = "cross_entropy",
        l1: float = 0.0,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        tta_flip: bool = False,
        steps_per_call: int = 1,
        finetune: dict[str, Any] | None = None,
        stop_on_non_finite_loss: bool = True,
    ) -> None:
        super().__init__()
        # The constructor arguments of this class and of the subclass being built (Lightning collects both),
        # in the checkpoint; not in the loggers: what runs are compared by is logged by src.train (src/runs/hparams.py).
        self.save_hyperparameters(ignore=["stop_on_non_finite_loss"], logger=False)
        require(
            isinstance(steps_per_call, int) and not isinstance(steps_per_call, bool) and steps_per_call > 0,
            f"steps_per_call must be a positive integer, got {steps_per_call!r}.",
        )
        self._recipes = {"label_smoothing": label_smoothing, "mixup_alpha": mixup_alpha,
                         "cutmix_alpha": cutmix_alpha, "tta_flip": tta_flip}
        self._check_hparams()
        from src.models.finetune import check_finetune

        self.finetune = check_finetune(finetune, scheduler)  # model.finetune (src/models/finetune.py)
        self.net = build_net(net)
        self.num_classes = num_classes
        self.label_smoothing = float(label_smoothing)
        self.tta_flip = bool(tta_flip)
        # Not an nn.Module attribute: it has no state, and stays out of summaries and checkpoints.
        self.mixer = BatchMixer(num_classes, mixup_alpha, cutmix_alpha) if mixup_alpha or cutmix_alpha else None
        self.val_confusion = MulticlassConfusionMatrix(num_classes=num_classes)
        self.test_confusion = MulticlassConfusionMatrix(num_classes=num_classes)
        # Top-5 accuracy where top-1 leaves room (CIFAR-100): eval steps only, synced by torchmetrics.
        top5 = lambda: MulticlassAccuracy(num_classes, top_k=5, average="micro", validate_args=False)  # noqa: E731
        self.val_top5 = top5() if num_classes > 10 else None
        self.test_top5 = top5() if num_classes > 10 else None
        self.stop_on_non_finite_loss = stop_on_non_finite_loss
        self.val_acc_best = 0.0
        self.val_confusion_matrix: torch.Tensor | None = None  # the last epoch's, for callbacks
        self.test_confusion_matrix: torch.Tensor | None = None
        self.steps_per_call = steps_per_call
        # Decided here, before Lightning checks the run's configuration against it.
        self.automatic_optimization = self.steps_per_call == 1
        self.epoch_curves_to_loggers = True
        self._train_sums_to_restore: dict[str, Any] | None = None  # from a checkpoint, until training starts
        # One zero input: TensorBoard's GRAPHS tab (logger.log_graph) and the summary's in/out sizes.
        input_shape = net.get("input_shape")
        if input_shape:
            self.example_input_array = torch.zeros(1, *(int(d) for d in input_shape))
        self._train = EpochSums(self.device)
        self._reset_eval_sums()

    # --- what differs between families ---------------------------------------------------------
    def _check_hparams(self) -> None:
        hp = self.hparams
        lr = hp.optimizer.get("lr")
        require(
            isinstance(lr, (int, float)) and lr > 0,
            f"optimizer.lr must be a positive number, got {lr!r}; try e.g. optimizer.lr=0.01.",
        )
        require(hp.l1 >= 0, f"model.l1 must be >= 0, got {hp.l1}.")
        self._check_recipes()
        self._check_task()

    def _check_recipes(self) -> None:
        hp, recipes = self.hparams, self._recipes
        smoothing = recipes["label_smoothing"]
        require(
            isinstance(smoothing, (int, float)) and 0 <= smoothing < 1,
            f"model.label_smoothing must be in [0, 1) (e.g. 0.1; 0 = off), got {smoothing!r}.",
        )
        for key in ("mixup_alpha", "cutmix_alpha"):
            require(
                isinstance(recipes[key], (int, float)) and recipes[key] >= 0,
                f"model.{key} must be >= 0 (e.g. 0.2 for mixup, 1.0 for cutmix; 0 = off), got {recipes[key]!r}.",
            )
        shape = hp.net.get("input_shape")
        for key in ("mixup_alpha", "cutmix_alpha", "tta_flip"):
            require(
                not recipes[key] or shape is None or len(shape) == 3,
                f"model.{key} works on images (C, H, W), but this data set's inputs have shape {list(shape or [])}; "
                f"drop model.{key} for it.",
            )
        check_scheduler(hp.scheduler)

    def _check_task(self) -> None:
        hp = self.hparams
        require(
            hp.loss in MULTICLASS_LOSSES,
            f"model.loss={hp.loss!r} is unknown; choose one of {sorted(MULTICLASS_LOSSES)}.",
        )
        require(hp.num_classes >= 2, f"num_classes must be at least 2, got {hp.num_classes}.")

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of class-index targets (N,) or soft targets (N, C); label smoothing applies in
        training mode only, so validation and test losses stay comparable across recipes."""
        smoothing = self.label_smoothing if self.training else 0.0
        return MULTICLASS_LOSSES[self.hparams.loss](outputs, targets, label_smoothing=smoothing)

    def training_loss(self, outputs: Any, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, loss) of the net's training-mode output; a family whose net returns more than
        logits in training (GoogLeNet's auxiliary heads) overrides this."""
        return outputs, self.compute_loss(outputs, targets)

    def class_scores(self, outputs: torch.Tensor) -> torch.Tensor:
        """(N, num_classes) scores whose argmax is the prediction (for metrics)."""
        return outputs

    def predicted_classes(self, outputs: torch.Tensor) -> torch.Tensor:
        """(N,) predicted class indices: the argmax of `class_scores` (a cheaper form where there is one)."""
        return self.class_scores(outputs).argmax(1)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a batch of (already preprocessed) inputs (flip-averaged with tta_flip)."""
        if self.tta_flip:
            return flip_tta_log_probs(self.net, x).exp()
        return torch.softmax(self.net(x).float(), dim=1)

    def eval_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """What validation and test score: the logits, or with tta_flip the flip-averaged log-probabilities."""
        return flip_tta_log_probs(self, x) if self.tta_flip else self(x)

    # --- steps ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def l1_penalty(self) -> torch.Tensor | float:
        if not self.hparams.l1:
            return 0.0
        weights = [p.abs().sum() for p in self.net.parameters() if p.ndim > 1]
        return self.hparams.l1 * torch.stack(weights).sum()

    # --- training ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # TensorBoard's GRAPHS tab: Lightning traces the model with torch.jit, deprecated in recent PyTorch.
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace(_method)?` is deprecated")
        if stage == "fit":  # a callback that logs the epoch curves itself, per N steps (StepHistory)
            self.epoch_curves_to_loggers = not any(getattr(c, "logs_training_curves", False)
                                                   for c in self.trainer.callbacks)

    def on_train_start(self) -> None:
        sums, self._train_sums_to_restore = self._train_sums_to_restore, None
        if sums:  # resumed: the checkpoint's epoch continues (a new epoch resets them in on_train_epoch_start)
            self._train = EpochSums(self.device)
            self._train.loss_sum.copy_(sums["loss"])
            self._train.correct.copy_(sums["correct"])
            self._train.count = int(sums["count"])

    def on_train_epoch_start(self) -> None:
        self._train = EpochSums(self.device)

    @property
    def last_training_batch(self) -> TrainingBatch | None:
        """The batch of the last optimizer step (None before the epoch's first step); see the class docstring."""
        return self._train.last

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of one batch (plus the L1 penalty); accumulates the epoch's train loss and accuracy.
        With mixup/cutmix the batch and its targets are mixed first; accuracy then counts the mixed
        target's dominant class as the label."""
        if self.mixer is not None:
            x, y = self.mixer(x, y)  # soft targets (N, num_classes)
        logits, loss = self.training_loss(self.net(x), y)
        labels = y.argmax(1) if y.ndim > 1 else y
        # Detached values: these few ops record no graph (and need no `torch.no_grad()` block).
        self._train.add(loss.detach(), (self.predicted_classes(logits.detach()) == labels).sum(), len(y))
        return loss + self.l1_penalty() if self.hparams.l1 else loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        if self.automatic_optimization:
            return self._loss(*batch)
        multi_step.take_steps(self, batch, self._loss, step_scheduler=self._scheduler_interval() == "step")
        return None

    def _stop_if_loss_is_not_finite(self) -> None:
        """One host sync per epoch: a NaN/inf training loss ends the run before validation, so no
        checkpoint of the broken model is written."""
        sums = self._train
        if self.stop_on_non_finite_loss and sums.count and not torch.isfinite(sums.loss_sum):
            value = float(sums.loss_sum / sums.count)
            lr = self.hparams.optimizer.get("lr")
            raise UserError(
                f"the training loss became {value} in epoch {self.current_epoch} (step {self.trainer.global_step}); "
                f"the run stopped: lower the learning rate (optimizer.lr={lr} now, try {lr / 10:g})."
            )

    def on_train_epoch_end(self) -> None:
        self._stop_if_loss_is_not_finite()
        sums = self._train
        if sums.count:
            logger = None if self.epoch_curves_to_loggers else False
            for key, value in (("train/loss", sums.loss_sum / sums.count),
                               ("train/acc", sums.correct.float() / sums.count)):
                self.log(key, value, prog_bar=True, sync_dist=True, logger=logger)
        if not self.automatic_optimization and self._scheduler_interval() == "epoch":
            multi_step.step_epoch_scheduler(self, (self.hparams.scheduler or {}).get("monitor", "val/loss"))

    def _scheduler_interval(self) -> str | None:
        return scheduler_interval(self.hparams.scheduler)

    # --- evaluation ----------------------------------------------------------------------------
    def _reset_eval_sums(self) -> None:
        self._eval_loss_sum = torch.zeros((), device=self.device)
        self._eval_count = 0

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], confusion: MulticlassConfusionMatrix,
                   top5: MulticlassAccuracy | None = None) -> None:
        x, y = batch
        outputs = self.eval_outputs(x)
        self._eval_loss_sum += self.compute_loss(outputs, y).detach() * len(y)
        self._eval_count += len(y)
        scores = self.class_scores(outputs)
        confusion.update(scores, y)
        if top5 is not None:
            top5.update(scores, y)

    def _eval_epoch_end(self, confusion: MulticlassConfusionMatrix, prefix: str,
                        top5: MulticlassAccuracy | None = None) -> torch.Tensor:
        """Log `<prefix>/loss`, acc, precision, recall, f1 (and acc_top5); return the epoch's confusion matrix."""
        matrix = confusion.compute()
        confusion.reset()
        metrics = {f"{prefix}/{k}": v for k, v in metrics_from_confusion(matrix).items()}
        if top5 is not None:
            metrics[f"{prefix}/acc_top5"] = top5.compute()
            top5.reset()
        if self._eval_count:
            metrics[f"{prefix}/loss"] = self._eval_loss_sum / self._eval_count
        self._reset_eval_sums()
        shown = {f"{prefix}/acc", f"{prefix}/loss"} if prefix == "val" else set()
        for key, value in metrics.items():
            curve = key in shown and not self.epoch_curves_to_loggers  # a per-step history logs this curve instead
            self.log(key, value, prog_bar=key in shown, sync_dist=key.endswith("/loss"),
                     logger=False if curve else None)
        return matrix

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self._stop_if_loss_is_not_finite()
        self._reset_eval_sums()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_confusion, self.val_top5)

    def on_validation_epoch_end(self) -> None:
        self.val_confusion_matrix = self._eval_epoch_end(self.val_confusion, "val", self.val_top5).cpu()
        if not self.trainer.sanity_checking:
            acc = float(self.trainer.callback_metrics["val/acc"])
            self.val_acc_best = max(self.val_acc_best, acc)
        self.log("val/acc_best", self.val_acc_best)

    def on_test_epoch_start(self) -> None:
        self._reset_eval_sums()

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_confusion, self.test_top5)

    def on_test_epoch_end(self) -> None:
        self.test_confusion_matrix = self._eval_epoch_end(self.test_confusion, "test", self.test_top5).cpu()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["val_acc_best"] = self.val_acc_best
        # Random-number states, so that a resumed run draws the same dropout masks and augmentations.
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()
        # The epoch's running train sums: a run resumed mid-epoch logs that epoch's train/loss over all its batches.
        checkpoint["train_epoch_sums"] = {"loss": self._train.loss_sum.detach().cpu(),
                                          "correct": self._train.correct.cpu(), "count": self._train.count}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.val_acc_best = float(checkpoint.get("val_acc_best", 0.0))
        self._train_sums_to_restore = checkpoint.get("train_epoch_sums")  # set on the device in on_train_start
        states = checkpoint.get("rng_states") or {}
        if "torch" in states:
            torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states["cuda"])

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_proba(x)

    def configure_callbacks(self) -> list[L.Callback]:
        """`model.finetune.freeze_epochs=N`: the callback that freezes the backbone for N epochs."""
        if not self.finetune["freeze_epochs"]:
            return []
        from src.callbacks.finetune import FreezeBackbone

        return [FreezeBackbone(self.finetune["freeze_epochs"])]

    # --- optimisation --------------------------------------------------------------------------
    def planned_optimizer_steps(self) -> int | float:
        """Optimizer steps of the whole run (e.g. OneCycleLR's `total_steps`), whatever steps_per_call."""
        return multi_step.planned_optimizer_steps(self.trainer)

    def configure_optimizers(self) -> Any:
        """The optimizer (`optimizer.decay_bias_and_norm=false`: no weight decay on biases and
        normalisation layers) and the lr schedule, with an optional linear warmup (src/models/recipes.py)."""
        optimizer_cfg = dict(self.hparams.optimizer)
        decay_bias_and_norm = optimizer_cfg.pop("decay_bias_and_norm", True)
        params = optimizer_parameters(self, decay_bias_and_norm)
        if self.finetune["backbone_lr_scale"] != 1:
            from src.models.finetune import scale_backbone_lr

            params = scale_backbone_lr(params, self.net, optimizer_cfg["lr"], self.finetune["backbone_lr_scale"])
        optimizer = instantiate(optimizer_cfg)(params=params)
        scheduler = build_scheduler(self.hparams.scheduler, optimizer, total_steps=self.planned_optimizer_steps)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class BinaryClassificationModule(ClassificationModule):
    """Two classes from one output unit: sigmoid + binary cross-entropy (the gates, XOR).

    Metrics see two-column scores [1 - p, p], so accuracy, precision/recall and the confusion
    matrix are computed exactly as for any two-class problem.
    """

    def __init__(
        self,
        net: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        num_classes: int = 2,
        loss: str = "binary_cross_entropy",
        l1: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, num_classes, optimizer, scheduler, loss, l1, **kwargs)

    def _check_task(self) -> None:
        hp = self.hparams
        on = [key for key in RECIPE_KEYS if hp.get(key)]
        require(not on, f"a binary model (one output unit) trains without model.{on[0] if on else ''}; drop it.")
        require(
            hp.num_classes == 2,
            f"this model has one output unit for a two-class problem, but the data set has "
            f"{hp.num_classes} classes; use a multi-class model such as model=mlp.",
        )
        require(hp.loss == "binary_cross_entropy", "a binary model trains with loss=binary_cross_entropy.")

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return binary_cross_entropy(outputs, targets)

    def class_scores(self, outputs: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(outputs.float().reshape(-1, 1))
        return torch.cat([1 - p, p], dim=1)

    def predicted_classes(self, outputs: torch.Tensor) -> torch.Tensor:
        return (outputs.reshape(-1) > 0).long()  # p > 0.5: the argmax of [1 - p, p] (a tie is class 0)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_scores(self.net(x))

"""LightningModules: the training logic (loss, metrics, optimisation) around a plain `nn.Module` net.

Hyper-parameters are plain values (the resolved config), and the net is rebuilt from them: a
checkpoint loads with `weights_only=True` and needs nothing but this file to be evaluated.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate

from src.callbacks.finetune import FreezeBackbone
from src.config.build import build_net
from src.errors import require
from src.models import recipes
from src.models import steps_per_call as multi_step
from src.models.checkpoint_state import check_weights_fit, restore_rng_states, save_rng_states
from src.models.epoch_metrics import EvalMetrics, TrainingBatch, TrainingSums
from src.models.finetune import check_finetune, scale_backbone_lr
from src.models.losses import MULTICLASS_LOSSES


class ClassificationModule(L.LightningModule):
    """Multi-class classification: one of three equivalent cross-entropy formulations, optional L1.

    Logs `train/loss`, `train/acc` per epoch; `val/` and `test/` loss, acc, macro precision, recall, f1
    (and acc_top5 beyond ten classes, src/models/epoch_metrics.py); `val/acc_best`. Recipes, all off
    by default (docs/recipes.md): `label_smoothing` (training loss only), `mixup_alpha` / `cutmix_alpha`
    (train/acc counts the mixed target's dominant class), `tta_flip` (validation, test, prediction).
    `steps_per_call` K > 1 takes K optimizer steps per `training_step` from a list of K batches
    (src/models/steps_per_call.py). `stop_on_non_finite_loss=False` (the lr finder's models) keeps
    training when the loss diverges; by default a NaN/inf epoch loss stops the run in one sentence.

    Subclasses (a model family that trains differently) take their own arguments and pass the rest on
    with `**kwargs`; the hyper-parameters in a checkpoint are the arguments of both constructors, as
    Lightning's `save_hyperparameters` collects them, and `cls(**hparams)` rebuilds the module. What a
    family may override: `_check_task` (refuse arguments it cannot use), `compute_loss`,
    `training_loss` (nets with more than logits in training), `class_scores` / `predicted_classes` /
    `probabilities` (what metrics see), `eval_outputs` and `predict_proba` (test-time augmentation).

    For callbacks: `last_training_batch` (a `TrainingBatch`, None before an epoch's first step) is the
    batch of the last optimizer step, set before its backward pass, in both optimisation modes;
    `val_confusion_matrix` / `test_confusion_matrix` are the last pass's; `test_step` returns each
    batch's `{"probabilities": (N, C)}`. A callback that logs `train/loss`, `train/acc`, `val/loss` and
    `val/acc` itself, at a finer resolution, declares `logs_training_curves = True`: the module then
    sends these epoch curves to no logger while fitting (they still reach the progress bar,
    checkpoints, early stopping and final metrics).
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
        self.save_hyperparameters(ignore=["stop_on_non_finite_loss"], logger=False)  # loggers: src/runs/hparams.py
        recipes.check_arguments(self.hparams)
        self._check_task()
        self.finetune = check_finetune(finetune, scheduler)  # model.finetune, every setting present
        self.net = build_net(net)
        # Not an nn.Module attribute: it has no state, and stays out of summaries and checkpoints.
        self.mixer = recipes.BatchMixer(num_classes, mixup_alpha, cutmix_alpha) if mixup_alpha or cutmix_alpha else None
        self.val_metrics, self.test_metrics = EvalMetrics(num_classes), EvalMetrics(num_classes)
        self.stop_on_non_finite_loss = stop_on_non_finite_loss
        self.automatic_optimization = steps_per_call == 1  # fixed before Lightning checks the run's configuration
        self.val_acc_best = 0.0
        self.val_confusion_matrix = self.test_confusion_matrix = None  # the last passes' (for callbacks)
        self.epoch_curves_to_loggers = True
        self._train = TrainingSums(self.device)
        self._train_sums_to_restore: dict[str, Any] | None = None  # from a checkpoint, until training starts
        if net.get("input_shape"):  # TensorBoard's GRAPHS tab and the summary's in/out sizes
            self.example_input_array = torch.zeros(1, *(int(d) for d in net["input_shape"]))

    @property
    def num_classes(self) -> int:
        return self.hparams.num_classes

    # --- what differs between families ---------------------------------------------------------
    def _check_task(self) -> None:
        hp = self.hparams
        require(hp.loss in MULTICLASS_LOSSES,
                f"model.loss={hp.loss!r} is unknown; choose one of {sorted(MULTICLASS_LOSSES)}.")
        require(hp.num_classes >= 2, f"num_classes must be at least 2, got {hp.num_classes}.")

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of class-index targets (N,) or soft targets (N, C); label smoothing applies in
        training mode only, so validation and test losses stay comparable across recipes."""
        smoothing = self.hparams.label_smoothing if self.training else 0.0
        return MULTICLASS_LOSSES[self.hparams.loss](outputs, targets, label_smoothing=smoothing)

    def training_loss(self, outputs: Any, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, loss) of the net's training-mode output."""
        return outputs, self.compute_loss(outputs, targets)

    def class_scores(self, outputs: torch.Tensor) -> torch.Tensor:
        """(N, num_classes) scores whose argmax is the prediction (for metrics)."""
        return outputs

    def predicted_classes(self, outputs: torch.Tensor) -> torch.Tensor:
        """(N,) predicted class indices: the argmax of `class_scores` (a cheaper form where there is one)."""
        return self.class_scores(outputs).argmax(1)

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.class_scores(outputs).float(), dim=1)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a batch of (already preprocessed) inputs, as the test scores them
        (flip-averaged with tta_flip)."""
        return self.probabilities(self.eval_outputs(x))

    def eval_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """What validation and test score: the logits, or with tta_flip the flip-averaged log-probabilities."""
        return recipes.flip_tta_log_probs(self, x) if self.hparams.tta_flip else self(x)

    # --- training ------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.epoch_curves_to_loggers = not any(getattr(c, "logs_training_curves", False)
                                                   for c in self.trainer.callbacks)

    def on_train_start(self) -> None:
        sums, self._train_sums_to_restore = self._train_sums_to_restore, None
        if sums:  # resumed: the checkpoint's epoch continues (a new epoch resets them in on_train_epoch_start)
            self._train = TrainingSums(self.device, sums)

    def on_train_epoch_start(self) -> None:
        self._train = TrainingSums(self.device)

    @property
    def last_training_batch(self) -> TrainingBatch | None:
        return self._train.last

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of one batch plus the L1 penalty; adds the batch to the epoch's sums. With mixup/cutmix
        the batch and its targets are mixed first, and accuracy counts the mixed target's dominant class."""
        if self.mixer is not None:
            x, y = self.mixer(x, y)  # soft targets (N, num_classes)
        logits, loss = self.training_loss(self.net(x), y)
        labels = y.argmax(1) if y.ndim > 1 else y
        self._train.add(loss.detach(), (self.predicted_classes(logits.detach()) == labels).sum(), len(y))
        if not self.hparams.l1:
            return loss
        return loss + self.hparams.l1 * torch.stack([p.abs().sum() for p in self.net.parameters() if p.ndim > 1]).sum()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        if self.automatic_optimization:
            return self._loss(*batch)
        per_step = recipes.scheduler_interval(self.hparams.scheduler) == "step"
        multi_step.take_steps(self, batch, self._loss, step_scheduler=per_step)
        return None

    def _stop_if_loss_is_not_finite(self) -> None:
        """A NaN/inf training loss ends the run before validation, so no checkpoint of the broken model is written."""
        if self.stop_on_non_finite_loss:
            self._train.stop_if_not_finite(self.current_epoch, self.trainer.global_step, self.hparams.optimizer["lr"])

    def on_train_epoch_end(self) -> None:
        self._stop_if_loss_is_not_finite()
        for key, value in self._train.means().items():
            self.log(key, value, prog_bar=True, sync_dist=True, logger=None if self.epoch_curves_to_loggers else False)
        if not self.automatic_optimization and recipes.scheduler_interval(self.hparams.scheduler) == "epoch":
            multi_step.step_epoch_scheduler(self, (self.hparams.scheduler or {}).get("monitor", "val/loss"))

    # --- evaluation ----------------------------------------------------------------------------
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

    # --- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["val_acc_best"] = self.val_acc_best
        save_rng_states(checkpoint)
        checkpoint["train_epoch_sums"] = self._train.state()  # a run resumed mid-epoch logs the whole epoch

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_weights_fit(self, checkpoint)
        self.val_acc_best = float(checkpoint.get("val_acc_best", 0.0))
        self._train_sums_to_restore = checkpoint.get("train_epoch_sums")  # set on the device in on_train_start
        restore_rng_states(checkpoint)

    # --- optimisation --------------------------------------------------------------------------
    def configure_callbacks(self) -> list[L.Callback]:
        """`model.finetune.freeze_epochs=N`: the callback that freezes the backbone for N epochs."""
        epochs = self.finetune["freeze_epochs"]
        return [FreezeBackbone(epochs)] if epochs else []

    def planned_optimizer_steps(self) -> int | float:
        """Optimizer steps of the whole run (e.g. OneCycleLR's `total_steps`), whatever steps_per_call."""
        return multi_step.planned_optimizer_steps(self.trainer)

    def configure_optimizers(self) -> Any:
        """The optimizer (`optimizer.decay_bias_and_norm=false`: no weight decay on biases and
        normalisation layers) and the lr schedule, with an optional linear warmup (src/models/recipes.py)."""
        optimizer_cfg = dict(self.hparams.optimizer)
        params = recipes.optimizer_parameters(self, optimizer_cfg.pop("decay_bias_and_norm", True))
        if self.finetune["backbone_lr_scale"] != 1:
            params = scale_backbone_lr(params, self.net, optimizer_cfg["lr"], self.finetune["backbone_lr_scale"])
        optimizer = instantiate(optimizer_cfg)(params=params)
        scheduler = recipes.build_scheduler(self.hparams.scheduler, optimizer, total_steps=self.planned_optimizer_steps)
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}


def __getattr__(name: str) -> Any:
    """`BinaryClassificationModule` under the class path that configs of earlier checkpoints name."""
    if name == "BinaryClassificationModule":
        return import_module("src.models.binary").BinaryClassificationModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""LightningModules: the training logic (loss, metrics, optimisation) around a plain `nn.Module` net.

Hyper-parameters are plain values (the resolved config), and the net is rebuilt from them: a
checkpoint loads with `weights_only=True` and needs nothing but this file to be evaluated.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torchmetrics
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from src.models.losses import MULTICLASS_LOSSES, binary_cross_entropy
from src.utils.errors import UserError, require


def build_net(net: dict[str, Any]) -> nn.Module:
    """Instantiate a net from its config dict; bad arguments become one-sentence user errors."""
    from hydra.utils import instantiate

    try:
        return instantiate(net, _convert_="all")
    except Exception as exc:  # Hydra wraps the net's own exception
        cause = exc.__cause__ or exc
        if isinstance(cause, ValueError):
            raise UserError(str(cause).rstrip(".") + ".") from None
        raise


def eval_metrics(num_classes: int, prefix: str) -> torchmetrics.MetricCollection:
    """Accuracy and macro precision / recall / F1 of a multi-class problem."""
    kw = {"num_classes": num_classes}
    return torchmetrics.MetricCollection(
        {
            "acc": MulticlassAccuracy(average="micro", **kw),
            "precision": torchmetrics.classification.MulticlassPrecision(average="macro", **kw),
            "recall": torchmetrics.classification.MulticlassRecall(average="macro", **kw),
            "f1": torchmetrics.classification.MulticlassF1Score(average="macro", **kw),
        },
        prefix=prefix,
    )


class ClassificationModule(L.LightningModule):
    """Multi-class classification: one of three equivalent cross-entropy formulations, optional L1.

    Logs `train/loss`, `train/acc` per epoch; `val/loss`, `val/acc`, `val/acc_best`, macro
    `val/precision|recall|f1`; the same under `test/` plus a confusion matrix at test time.
    """

    def __init__(
        self,
        net: dict[str, Any],
        num_classes: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        loss: str = "cross_entropy",
        l1: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._check_hparams()
        self.net = build_net(net)
        self.num_classes = num_classes
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_metrics = eval_metrics(num_classes, "val/")
        self.test_metrics = eval_metrics(num_classes, "test/")
        self.test_confusion = torchmetrics.classification.MulticlassConfusionMatrix(num_classes=num_classes)
        self.val_acc_best = torchmetrics.MaxMetric()
        self.train_loss = torchmetrics.MeanMetric()
        self.val_loss = torchmetrics.MeanMetric()
        self.test_loss = torchmetrics.MeanMetric()

    # --- what differs between families ---------------------------------------------------------
    def _check_hparams(self) -> None:
        hp = self.hparams
        lr = hp.optimizer.get("lr")
        require(
            isinstance(lr, (int, float)) and lr > 0,
            f"optimizer.lr must be a positive number, got {lr!r}; try e.g. optimizer.lr=0.01.",
        )
        require(hp.l1 >= 0, f"model.l1 must be >= 0, got {hp.l1}.")
        self._check_task()

    def _check_task(self) -> None:
        hp = self.hparams
        require(
            hp.loss in MULTICLASS_LOSSES,
            f"model.loss={hp.loss!r} is unknown; choose one of {sorted(MULTICLASS_LOSSES)}.",
        )
        require(hp.num_classes >= 2, f"num_classes must be at least 2, got {hp.num_classes}.")

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return MULTICLASS_LOSSES[self.hparams.loss](outputs, targets)

    def class_scores(self, outputs: torch.Tensor) -> torch.Tensor:
        """(N, num_classes) scores whose argmax is the prediction (for metrics)."""
        return outputs

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a batch of (already preprocessed) inputs."""
        return torch.softmax(self.net(x).float(), dim=1)

    # --- steps ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def l1_penalty(self) -> torch.Tensor | float:
        if not self.hparams.l1:
            return 0.0
        weights = [p.abs().sum() for p in self.net.parameters() if p.ndim > 1]
        return self.hparams.l1 * torch.stack(weights).sum()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        outputs = self(x)
        loss = self.compute_loss(outputs, y)
        self.train_loss.update(loss.detach())
        self.train_acc.update(self.class_scores(outputs.detach()), y)
        return loss + self.l1_penalty()

    def on_train_epoch_end(self) -> None:
        self.log("train/loss", self.train_loss.compute(), prog_bar=True)
        self.log("train/acc", self.train_acc.compute(), prog_bar=True)
        self.train_loss.reset()
        self.train_acc.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        outputs = self(x)
        self.val_loss.update(self.compute_loss(outputs, y), weight=len(y))
        self.val_metrics.update(self.class_scores(outputs), y)

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute()
        self.val_acc_best.update(metrics["val/acc"])
        self.log("val/acc", metrics.pop("val/acc"), prog_bar=True)
        self.log("val/loss", self.val_loss.compute(), prog_bar=True)
        self.log_dict(metrics)
        self.log("val/acc_best", self.val_acc_best.compute())
        self.val_metrics.reset()
        self.val_loss.reset()

    def on_train_start(self) -> None:
        # The sanity check must not count towards the best validation accuracy.
        self.val_acc_best.reset()

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        outputs = self(x)
        scores = self.class_scores(outputs)
        self.test_loss.update(self.compute_loss(outputs, y), weight=len(y))
        self.test_metrics.update(scores, y)
        self.test_confusion.update(scores, y)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.log("test/loss", self.test_loss.compute())
        self.test_metrics.reset()
        self.test_loss.reset()
        # Kept for callbacks (tables, plots) that run after this hook; reset at the next test.
        self.test_confusion_matrix = self.test_confusion.compute().cpu()
        self.test_confusion.reset()

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_proba(x)

    # --- optimisation --------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        from hydra.utils import instantiate

        optimizer = instantiate(dict(self.hparams.optimizer))(params=self.parameters())
        scheduler_cfg = dict(self.hparams.scheduler or {})
        if not scheduler_cfg:
            return optimizer
        interval = scheduler_cfg.pop("interval", "epoch")
        monitor = scheduler_cfg.pop("monitor", "val/loss")
        if "total_steps" in scheduler_cfg and scheduler_cfg["total_steps"] is None:
            scheduler_cfg["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = instantiate(scheduler_cfg)(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval, "monitor": monitor},
        }


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
    ) -> None:
        super().__init__(net, num_classes, optimizer, scheduler, loss, l1)

    def _check_task(self) -> None:
        hp = self.hparams
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

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_scores(self.net(x))

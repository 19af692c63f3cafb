"""Several labels per sample: `MultiLabelModule`, the task seam of `ClassificationModule` (loss, probabilities,
predictions, metrics) for targets that are (N, num_labels) 0/1 rows.

One sigmoid per label. Loss: `model.loss=cross_entropy` (the default; per-label binary cross-entropy, i.e.
`BCEWithLogits`, with an optional `model.pos_weight` list) or `model.loss=asymmetric` (ASL, Ridnik et al. 2021).
A label is predicted when its probability is above its threshold; the thresholds (a buffer, so they are stored
in every checkpoint and loaded by src.eval, src.predict and src.export) start at 0.5 and are tuned on each
validation pass for F1 (`tune_thresholds`). Metrics (`MultiLabelMetrics`, torchmetrics): mAP (macro average
precision), F1 micro / macro / samples, Hamming loss, exact match (also logged as `acc`: the subset accuracy,
so `val/acc` stays a monitor) and per-label precision, recall and F1 (a TensorBoard table and figure).
The data configs of several labels per sample choose this class (`data.task_model`); it loads only then.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric
from torchmetrics.functional.classification import (
    multilabel_average_precision,
    multilabel_exact_match,
    multilabel_f1_score,
    multilabel_hamming_distance,
    multilabel_precision,
    multilabel_recall,
)
from torchmetrics.utilities import dim_zero_cat

from src.errors import require
from src.models.classifier import TRICKS, ClassificationModule

LOSSES = ("cross_entropy", "binary_cross_entropy", "asymmetric")  # the first two: one loss, per-label BCE


class MultiLabelModule(ClassificationModule):
    """`ClassificationModule` with one sigmoid per label (module docstring)."""

    task = "multilabel"  # what src.eval, src.predict and src.export read to pick their outputs

    def __init__(self, net: dict[str, Any], num_classes: int, optimizer: dict[str, Any],
                 scheduler: dict[str, Any] | None = None, loss: str = "cross_entropy",
                 pos_weight: list[float] | None = None, asl_gamma_neg: float = 4.0, asl_gamma_pos: float = 0.0,
                 asl_clip: float = 0.05, **kwargs: Any) -> None:
        super().__init__(net, num_classes, optimizer, scheduler, loss, **kwargs)
        require(pos_weight is None or (len(pos_weight) == num_classes and min(pos_weight) > 0),
                f"model.pos_weight needs one positive weight per label ({num_classes}), got {pos_weight!r}.")
        require(asl_gamma_neg >= 0 and asl_gamma_pos >= 0 and 0 <= asl_clip < 1,
                "model.asl_gamma_neg and asl_gamma_pos must be >= 0 and model.asl_clip in [0, 1).")
        self.register_buffer("thresholds", torch.full((num_classes,), 0.5))
        self.register_buffer("pos_weight", torch.tensor(pos_weight, dtype=torch.float32) if pos_weight else None,
                             persistent=False)
        self.val_metrics, self.test_metrics = MultiLabelMetrics(num_classes), MultiLabelMetrics(num_classes)
        self.test_per_label: dict[str, torch.Tensor] | None = None  # the last test pass's (for reports)

    def check_task(self) -> None:
        hp = self.hparams
        require(hp.loss in LOSSES, f"model.loss={hp.loss!r} is unknown for several labels per sample; choose "
                                   f"one of {LOSSES} (cross_entropy: per-label binary cross-entropy).")
        require(hp.num_classes >= 1, f"num_classes (the number of labels) must be at least 1, got {hp.num_classes}.")
        for key in TRICKS:
            require(not hp.get(key), f"model.{key} mixes or averages exclusive classes; a model with several "
                                     "labels per sample trains without it: drop it.")

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(outputs.dtype)
        if self.hparams.loss == "asymmetric":
            return asymmetric_loss(outputs, targets, self.hparams.asl_gamma_neg, self.hparams.asl_gamma_pos,
                                   self.hparams.asl_clip)
        return F.binary_cross_entropy_with_logits(outputs, targets, pos_weight=self.pos_weight)

    def class_scores(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs.float())

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.class_scores(outputs)

    def predicted_classes(self, outputs: torch.Tensor) -> torch.Tensor:
        """(N, num_labels) 0/1: each label's probability above its threshold."""
        return (self.class_scores(outputs) > self.thresholds).long()

    def step_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The base's step with `train/acc` counting samples whose whole label set is right (exact match)."""
        loss = self.compute_loss(logits := self.net(x), y)
        exact = (self.predicted_classes(logits.detach()) == y.long()).all(1).sum()
        self.train_sums.add(loss.detach(), exact, len(y))
        weights = [p.abs().sum() for p in self.net.parameters() if p.ndim > 1] if self.hparams.l1 else []
        return loss + self.hparams.l1 * torch.stack(weights).sum() if weights else loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], metrics: Any) -> torch.Tensor:
        outputs = self.eval_outputs(batch[0])
        metrics.update(self.compute_loss(outputs, batch[1]), self.class_scores(outputs), batch[1])
        return outputs

    def on_validation_epoch_end(self) -> None:
        """Metrics at the thresholds in force, then thresholds tuned on this pass (kept from epoch 0 on)."""
        probabilities, targets = self.val_metrics.gathered()
        self.val_metrics.thresholds = self.thresholds
        self.val_metrics.log_to(self, "val", self.epoch_curves_to_loggers)
        if not self.trainer.sanity_checking:
            self.val_acc_best = max(self.val_acc_best, float(self.trainer.callback_metrics["val/acc"]))
            if len(targets):
                self.thresholds.copy_(tune_thresholds(probabilities, targets).to(self.thresholds))
        self.log("val/acc_best", self.val_acc_best)

    def on_test_epoch_end(self) -> None:
        self.test_metrics.thresholds = self.thresholds
        self.test_per_label = self.test_metrics.log_to(self, "test", self.epoch_curves_to_loggers)
        from src.models.multilabel_reports import log_per_label
        log_per_label(self, self.test_per_label)

    def write_predictions_csv(self, path: Any, split: Any, probabilities: torch.Tensor, names: list[str]) -> None:
        """test_predictions.csv / predictions.csv of label sets (multilabel_predictions.py)."""
        from src.models.multilabel_predictions import write_multilabel_predictions
        write_multilabel_predictions(path, split, probabilities, names, self.thresholds.cpu())


class SigmoidOutputs(nn.Module):
    """A net whose outputs are its logits' sigmoids: the per-label probabilities that src.export writes."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class MultiLabelMetrics(Metric):
    """One evaluation pass's probabilities and targets (gathered across processes), and the metrics of them
    at `thresholds`; `acc` is the exact match (the subset accuracy)."""

    full_state_update = False

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.thresholds: torch.Tensor | None = None
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")
        self.add_state("loss_sum", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, loss: torch.Tensor, scores: torch.Tensor, targets: torch.Tensor) -> None:
        self.probs.append(scores.detach().float())
        self.targets.append(targets.detach().long())
        self.loss_sum += loss.detach().float() * len(targets)
        self.count += len(targets)

    def gathered(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities, targets) of the pass, every process's."""
        if not self.probs:
            return torch.zeros(0, self.num_labels), torch.zeros(0, self.num_labels, dtype=torch.long)
        with self.sync_context():
            return dim_zero_cat(self.probs), dim_zero_cat(self.targets)

    def compute(self) -> dict[str, torch.Tensor]:
        probs, targets = dim_zero_cat(self.probs), dim_zero_cat(self.targets)
        thresholds = self.thresholds if self.thresholds is not None else torch.full((self.num_labels,), 0.5)
        values = multilabel_scores(probs, targets, thresholds.to(probs.device))
        if self.count:
            values["loss"] = self.loss_sum / self.count
        return values

    def log_to(self, module: Any, prefix: str, curves_to_loggers: bool = True) -> dict[str, torch.Tensor] | None:
        """Log `<prefix>/` map, f1_micro, f1_macro, f1_samples, hamming, exact_match, acc, loss; return the
        per-label precision, recall, f1 and support (None for an empty pass)."""
        if not self.probs:
            self.reset()
            return None
        values = self.compute()
        per_label = {k: values.pop(k) for k in ("precision", "recall", "f1", "support")}
        shown = {f"{prefix}/acc", f"{prefix}/loss"} if prefix == "val" else set()
        for key, value in values.items():
            name = f"{prefix}/{key}"
            module.log(name, value.float(), prog_bar=name in shown,
                       logger=False if name in shown and not curves_to_loggers else None)
        self.reset()
        return {k: v.cpu() for k, v in per_label.items()}


def multilabel_scores(probs: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor) -> dict[str, torch.Tensor]:
    """The metrics of (N, L) probabilities against 0/1 targets, labels predicted above `thresholds` (torchmetrics;
    they equal scikit-learn's average_precision_score(average="macro"), f1_score(average="micro" | "macro" |
    "samples"), hamming_loss and accuracy_score on the same predictions)."""
    n = probs.shape[1]
    predicted = (probs > thresholds).long()
    f1 = lambda average: multilabel_f1_score(predicted, targets, n, average=average)  # noqa: E731
    return {
        "map": multilabel_average_precision(probs, targets, n, average="macro"),
        "f1_micro": f1("micro"), "f1_macro": f1("macro"),
        "f1_samples": multilabel_f1_score(predicted.unsqueeze(-1), targets.unsqueeze(-1), n, average="micro",
                                          multidim_average="samplewise").mean(),  # one F1 per sample
        "hamming": multilabel_hamming_distance(predicted, targets, n, average="micro"),
        "exact_match": (em := multilabel_exact_match(predicted, targets, n)), "acc": em,
        "precision": multilabel_precision(predicted, targets, n, average=None),
        "recall": multilabel_recall(predicted, targets, n, average=None),
        "f1": f1(None), "support": targets.sum(0),
    }


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, gamma_neg: float = 4.0, gamma_pos: float = 0.0,
                    clip: float = 0.05, eps: float = 1e-8) -> torch.Tensor:
    """ASL (Ridnik et al., 2021): focusing `gamma_pos` on positives, `gamma_neg` and a probability margin `clip`
    on negatives (easy negatives count less); summed over labels, averaged over samples."""
    p = torch.sigmoid(logits)
    p_neg = (p - clip).clamp(min=0) if clip > 0 else p  # shifted probability of the negatives
    loss_pos = targets * (1 - p).pow(gamma_pos) * torch.log(p.clamp(min=eps))
    loss_neg = (1 - targets) * p_neg.pow(gamma_neg) * torch.log((1 - p_neg).clamp(min=eps))
    return -(loss_pos + loss_neg).sum(1).mean()


def tune_thresholds(probs: torch.Tensor, targets: torch.Tensor, candidates: int = 99) -> torch.Tensor:
    """Per label, the threshold of 0.01 ... 0.99 with the best F1 on (probs, targets) (the closest to 0.5 among
    equals); 0.5 for every label where those thresholds together give a lower micro F1 than 0.5 does."""
    grid = torch.linspace(0.01, 0.99, candidates, device=probs.device)
    positive = targets.bool().unsqueeze(0)                        # (1, N, L)
    predicted = probs.unsqueeze(0) > grid.view(-1, 1, 1)         # (G, N, L)
    tp = (predicted & positive).sum(1).double()                  # (G, L)
    f1 = 2 * tp / (predicted.sum(1) + positive.sum(1)).double().clamp(min=1)
    closeness = -(grid - 0.5).abs().view(-1, 1) * 1e-9           # ties go to the threshold nearest 0.5
    tuned = grid[(f1 + closeness).argmax(0)]
    half = torch.full_like(tuned, 0.5)
    micro = lambda t: multilabel_f1_score((probs > t).long(), targets.long(), probs.shape[1], average="micro")  # noqa: E731
    return tuned if micro(tuned) >= micro(half) else half

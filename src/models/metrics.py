"""Classification metrics derived from one confusion matrix.

Validation and test accumulate a single torchmetrics `MulticlassConfusionMatrix` (one update per
batch, synced across processes by torchmetrics); accuracy and macro precision / recall / F1 are
read off it at the end of the epoch. This gives the same numbers as torchmetrics' separate
metric classes (tested) for a fraction of their per-epoch cost, and the matrix itself for plots.
"""

from __future__ import annotations

import torch


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))


def metrics_from_confusion(matrix: torch.Tensor) -> dict[str, torch.Tensor]:
    """acc, macro precision, recall and F1 of a (true x predicted) count matrix.

    As torchmetrics' `average="macro"`: per-class scores with 0 for an empty denominator,
    averaged over the classes that occur in the targets or the predictions.
    """
    m = matrix.double()
    tp = m.diagonal()
    predicted, actual = m.sum(0), m.sum(1)
    fp, fn = predicted - tp, actual - tp
    precision = _safe_divide(tp, tp + fp)
    recall = _safe_divide(tp, tp + fn)
    f1 = _safe_divide(2 * tp, 2 * tp + fp + fn)
    present = ((tp + fp + fn) > 0).double()
    weight = present / present.sum().clamp(min=1)
    out = {
        "acc": _safe_divide(tp.sum(), m.sum()),
        "precision": (precision * weight).sum(),
        "recall": (recall * weight).sum(),
        "f1": (f1 * weight).sum(),
    }
    return {k: v.float() for k, v in out.items()}


def per_class_metrics(matrix: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-class precision, recall, F1 and support of a (true x predicted) count matrix.

    Each value is a float tensor of shape (num_classes,) (support: the class's true count). A score
    whose denominator is empty is 0, as in `metrics_from_confusion`, whose macro averages are the
    means of these over the classes that occur in the targets or the predictions.
    """
    m = matrix.double()
    tp = m.diagonal()
    predicted, actual = m.sum(0), m.sum(1)
    out = {
        "precision": _safe_divide(tp, predicted),
        "recall": _safe_divide(tp, actual),
        "f1": _safe_divide(2 * tp, predicted + actual),
        "support": actual,
    }
    return {k: v.float() for k, v in out.items()}

"""Per-class metrics of a confusion matrix, for the reports (the epoch's macro averages are
`src.models.classifier.metrics_from_confusion`, read off the same matrix)."""

from __future__ import annotations

import torch


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))


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

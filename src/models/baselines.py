"""Classical scikit-learn classifiers fitted and scored on a data module's own splits, flattened to one row per
sample (`src.data.baseline_splits.BaselineSplits`), with the metrics the nets log."""

from __future__ import annotations

import numpy as np
import torch

from src.models.calibration import calibration_metrics
from src.models.classifier import metrics_from_confusion


def class_probabilities(estimator, features: np.ndarray, num_classes: int) -> torch.Tensor:
    """(N, num_classes) probabilities; a class the training split lacks gets probability 0."""
    out = np.zeros((len(features), num_classes), dtype=np.float64)
    out[:, np.asarray(estimator.classes_, dtype=int)] = estimator.predict_proba(features)
    return torch.as_tensor(out, dtype=torch.float32)


def split_metrics(probabilities: torch.Tensor, targets: torch.Tensor, prefix: str) -> dict[str, float]:
    """`<prefix>/acc`, loss (mean NLL), macro precision, recall, F1 (as the nets log them), ECE, NLL, Brier."""
    targets = targets.long().cpu()
    num_classes = probabilities.shape[1]
    predicted = probabilities.argmax(1)
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    matrix.index_put_((targets, predicted), torch.ones_like(targets), accumulate=True)
    scores = {k: float(v) for k, v in metrics_from_confusion(matrix).items()}
    calibration = calibration_metrics(probabilities, targets)
    metrics = {"acc": scores["acc"], "loss": calibration["nll"], "precision": scores["precision"],
               "recall": scores["recall"], "f1": scores["f1"], **calibration}
    return {f"{prefix}/{k}": v for k, v in metrics.items()}


def fit_and_score(estimator, splits) -> tuple[dict[str, float], torch.Tensor]:
    """Fit on the training split of `splits` (a `BaselineSplits`); (val and test metrics, test probabilities)."""
    estimator.fit(splits.features["train"], splits.train.targets.cpu().numpy())
    metrics: dict[str, float] = {}
    test_probabilities = None
    for key in ("val", "test"):
        probabilities = class_probabilities(estimator, splits.features[key], splits.num_classes)
        metrics.update(split_metrics(probabilities, getattr(splits, key).targets, key))
        test_probabilities = probabilities
    metrics["val/acc_best"] = metrics["val/acc"]
    return dict(sorted(metrics.items())), test_probabilities

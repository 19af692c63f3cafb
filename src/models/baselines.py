"""Classical scikit-learn classifiers on a data module's own splits: the inputs a net gets (after the data set's
normalisation, fitted on the training split), flattened to one row per sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from src.data.in_memory import InMemoryDataModule
from src.data.splits import Split
from src.errors import require
from src.models.calibration import calibration_metrics
from src.models.metrics import metrics_from_confusion


@dataclass
class BaselineSplits:
    train: Split
    val: Split
    test: Split
    features: dict[str, np.ndarray]  # "train" / "val" / "test": (N, features) float32
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def in_memory_splits(datamodule) -> BaselineSplits:
    """The data module's train/val/test splits as feature matrices; one sentence for data not held in memory."""
    name = getattr(datamodule, "name", type(datamodule).__name__)
    require(isinstance(datamodule, InMemoryDataModule),
            f"the {name} data set is not held in memory, which the scikit-learn baselines need; use a data set "
            "that is (data=digits, iris, csv, image_folder of a size that fits).")
    require(datamodule.loader == "tensor",
            f"the {name} data set is read sample by sample from its files (data.loader={datamodule.loader}: too large "
            "to hold in memory, or asked for), but the scikit-learn baselines need every input in memory; use a "
            "smaller data set or image size (data.image_size), or data.loader=tensor if it fits.")
    datamodule.prepare_data()
    datamodule.setup("fit")
    splits = {"train": datamodule.train_split, "val": datamodule.val_split, "test": datamodule.test_split}
    features = {key: flat_features(split, datamodule.transform) for key, split in splits.items()}
    return BaselineSplits(**splits, features=features, class_names=[str(n) for n in datamodule.class_names])


def flat_features(split: Split, transform, chunk: int = 4096) -> np.ndarray:
    """(N, features) float32: the split's inputs through the data set's transform (as the nets get them)."""
    parts = []
    for start in range(0, len(split), chunk):
        x = split.inputs[start:start + chunk].cpu()
        x = transform(x) if transform is not None else x.float()
        parts.append(x.reshape(len(x), -1).float().numpy())
    return np.concatenate(parts)


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


def fit_and_score(estimator, splits: BaselineSplits) -> tuple[dict[str, float], torch.Tensor]:
    """Fit on the training split; (val and test metrics, test probabilities)."""
    estimator.fit(splits.features["train"], splits.train.targets.cpu().numpy())
    metrics: dict[str, float] = {}
    test_probabilities = None
    for key in ("val", "test"):
        probabilities = class_probabilities(estimator, splits.features[key], splits.num_classes)
        metrics.update(split_metrics(probabilities, getattr(splits, key).targets, key))
        test_probabilities = probabilities
    metrics["val/acc_best"] = metrics["val/acc"]
    return dict(sorted(metrics.items())), test_probabilities

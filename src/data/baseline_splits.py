"""A data module's own splits as feature matrices for the classical scikit-learn baselines (`src.baseline`): the
inputs a net gets (after the data set's normalisation, fitted on the training split), one row per sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.data.in_memory import InMemoryDataModule
from src.data.splits import Split
from src.errors import require


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

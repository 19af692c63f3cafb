"""Fisher's iris from scikit-learn, split exactly as notes 0 does."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from src.data.in_memory import InMemoryDataModule
from src.data.splits import Split
from src.errors import require

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


class Standardize:
    """Per-feature (x - mean) / std with statistics of the training split."""

    def __init__(self, features: torch.Tensor) -> None:
        self.mean, self.std = features.mean(0), features.std(0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


class IrisDataModule(InMemoryDataModule):
    """150 flowers, 3 species. `train_test_split(train_size, test_size, random_state=split_seed)`."""

    def __init__(
        self,
        features: Sequence[str] = FEATURES,
        train_size: int = 75,
        test_size: int = 25,
        validate_on_test: bool = False,
        standardize: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        unknown = [f for f in features if f not in FEATURES]
        require(not unknown, f"unknown iris feature(s) {unknown}; choose from {list(FEATURES)}.")
        require(
            train_size + test_size <= 150,
            f"data.train_size + data.test_size is {train_size + test_size}, but iris has 150 flowers.",
        )
        self.features, self.train_size, self.test_size = list(features), train_size, test_size
        self.validate_on_test, self.standardize = validate_on_test, standardize

    def load(self) -> tuple[Split, Split | None, Split, list[str]]:
        iris = load_iris()
        x = iris.data[:, [FEATURES.index(f) for f in self.features]]
        x_train, x_test, y_train, y_test = train_test_split(
            x, iris.target, train_size=self.train_size, test_size=self.test_size, random_state=self.split_seed
        )
        train = Split(torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train, dtype=torch.long))
        test = Split(torch.tensor(x_test, dtype=torch.float32), torch.tensor(y_test, dtype=torch.long))
        return train, (test if self.validate_on_test else None), test, list(iris.target_names)

    def make_transform(self, train: Split) -> Standardize | None:
        return Standardize(train.inputs) if self.standardize else None

"""k-fold cross-validation for several labels per sample (`data.num_folds`, `data.fold`): a plain seeded
`KFold` (shuffled by `data.split_seed`) of the training samples, since a stratified fold needs one class per
sample. Fold `data.fold` is the validation split; the folds of a sweep together give every training sample an
out-of-fold probability per label, which `python -m src.audit SWEEP` reads (src/inspection/multilabel_issues.py).
Loaded only by the data modules of several labels per sample."""

from __future__ import annotations

from typing import Any

import numpy as np

from src.data.multilabel import validation_split


class LabelSetFolds:
    """Mixed into a data module of several labels per sample whose `load()` returns its validation split
    itself (a fold of `fold_count` when set): `setup()` hides `num_folds` from `InMemoryDataModule.setup`, whose
    folds are stratified by one class; and it refuses a model that is not of the task."""

    fold_count: int | None = None

    def setup(self, stage: str | None = None) -> None:
        from src.errors import require
        module = getattr(getattr(self, "trainer", None), "lightning_module", None)
        require(module is None or getattr(module, "task", None) == "multilabel",
                f"{type(module).__name__} predicts one class per sample, but {self.name} has several labels per "
                "sample; choose a model built on the classifier (model=mlp, lenet, resnet18, timm, ...).")
        self.fold_count, self.num_folds = self.num_folds or self.fold_count, None
        try:
            super().setup(stage)  # type: ignore[misc]
        finally:
            self.num_folds = self.fold_count

    def carve_validation(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        own: Any = self
        return validation_split(count, self.num_folds or self.fold_count, own.fold, own.val_fraction, own.split_seed)

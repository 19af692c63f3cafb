"""A table with several labels per row: `data=csv data.target=[colA,colB,...]` (0/1 columns, one per label) or
`data.target=COLUMN data.label_separator='|'` (one column of label lists, e.g. `red|round`).

The rows are read, cleaned and encoded as `data=csv` does (`src/data/csv_table.py`); the targets are (N, L) 0/1
rows and the splits are seeded random ones (test `test_fraction`, validation `val_fraction` of the rest, or
fold `data.fold` of a seeded `data.num_folds`-fold split of it; a stratified split needs one class per row).
`data.allow_no_label=true` accepts rows without any label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from src.data.csv_table import CSVDataModule
from src.data.in_memory import InMemoryDataModule
from src.data.multilabel import multilabel_layout, targets_of
from src.data.multilabel_folds import LabelSetFolds
from src.data.splits import Split
from src.data.table_encoding import TableEncoder
from src.errors import require


class MultiLabelCSVDataModule(LabelSetFolds, CSVDataModule):
    """A table's rows as encoded feature vectors with (N, L) 0/1 targets (module docstring)."""

    def __init__(self, path: str, target: Any, features: Sequence[str] | None = None, missing: str = "error",
                 test_fraction: float = 0.2, encoding: str | None = None, label_separator: str | None = None,
                 allow_no_label: bool = False, task_model: str | None = None, **kwargs: Any) -> None:
        InMemoryDataModule.__init__(self, **kwargs)
        self.path, self.targets = str(path), targets_of(target)
        self.target = ",".join(self.targets)
        self.features = list(features) if features else None
        self.missing, self.test_fraction, self.encoding = missing, float(test_fraction), encoding
        self.layout = multilabel_layout(self.path, self.targets, self.features, missing, test_fraction,
                                        self.val_fraction, self.split_seed, encoding, label_separator, allow_no_label,
                                        self.num_folds, self.fold)
        self.class_names = list(self.layout.class_names)
        require(len(self.class_names) == self.num_classes,
                f"data.num_classes is {self.num_classes} but {self.path} has {len(self.class_names)} labels; "
                "leave data.num_classes to the config.")
        self.encoder: TableEncoder | None = None

    def load(self) -> tuple[Split, Split, Split, list[str]]:
        layout = self.layout
        rows = [str(r) for r in layout.frame.index.tolist()]
        everything = Split(torch.arange(len(layout.targets)), torch.from_numpy(layout.targets), rows)
        return (everything.subset(layout.rest), everything.subset(layout.val), everything.subset(layout.test),
                list(layout.class_names))

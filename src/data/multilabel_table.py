"""A table with several labels per row: `data=csv data.target=[colA,colB,...]` (0/1 columns, one per label) or
`data.target=COLUMN data.label_separator='|'` (one column of label lists, e.g. `red|round`).

The rows are read, cleaned and encoded as `data=csv` does (`src/data/csv_table.py`); the targets are (N, L) 0/1
rows and the splits are seeded random ones (test `test_fraction`, validation `val_fraction` of the rest; a
stratified split needs one class per row). `data.allow_no_label=true` accepts rows without any label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data.csv_table import CSVDataModule, TableLayout, _handle_missing
from src.data.in_memory import InMemoryDataModule
from src.data.multilabel import MODULE, indicator_matrix, label_matrix, parse_label_sets, random_split
from src.data.splits import Split
from src.data.table_encoding import MISSING_POLICIES, TableEncoder
from src.data.table_files import read_table
from src.errors import require

SINGLE_LABEL = ("src.data.csv_table.CSVDataModule", "src.models.classifier.ClassificationModule")


def is_multilabel(data: Any) -> bool:
    """Several target columns, or one column of label lists."""
    return bool(data.get("label_separator")) or not isinstance(data.target, (str, int, float))


def config_value(key: str, data: Any) -> Any:
    """`${table:data_module}` and `${table:task_model}` (which classes the table's task takes), and the
    `${table:...}` values of a table with several labels per row."""
    several = is_multilabel(data)
    if key in ("data_module", "task_model"):
        classes = ("src.data.multilabel_table.MultiLabelCSVDataModule", MODULE) if several else SINGLE_LABEL
        return classes[0] if key == "data_module" else classes[1]
    layout = multilabel_layout(data.path, list(targets_of(data.target)), data.get("features"), data.get("missing"),
                               data.get("test_fraction", 0.2), data.get("val_fraction", 0.1),
                               data.get("split_seed", 42),
                               data.get("encoding"), data.get("label_separator"), data.get("allow_no_label", False))
    return len(layout.class_names) if key == "num_classes" else [layout.encoder.width]


def targets_of(target: Any) -> tuple[str, ...]:
    return (str(target),) if isinstance(target, (str, int, float)) else tuple(str(t) for t in target)


@dataclass
class MultiLabelLayout(TableLayout):
    val: np.ndarray = None  # positions of the validation rows (`rest` holds the training rows)


def multilabel_layout(path: str, targets: Sequence[str], features: Sequence[str] | None, missing: str | None,
                      test_fraction: float, val_fraction: float, split_seed: int, encoding: str | None,
                      separator: str | None, allow_no_label: bool) -> MultiLabelLayout:
    resolved = Path(str(path)).expanduser()
    require(resolved.is_file(), f"there is no table at {resolved}; pass data.path=FILE (a .csv, .xlsx or .parquet).")
    stat = resolved.stat()
    return _layout(str(resolved.resolve()), stat.st_size, stat.st_mtime_ns, tuple(targets),
                   tuple(features) if features else None, missing or "error", float(test_fraction),
                   float(val_fraction), int(split_seed), encoding or None, separator or None, bool(allow_no_label))


@lru_cache(maxsize=8)
def _layout(path: str, size: int, mtime_ns: int, targets: tuple[str, ...], features: tuple[str, ...] | None,
            missing: str, test_fraction: float, val_fraction: float, split_seed: int, encoding: str | None,
            separator: str | None, allow_no_label: bool) -> MultiLabelLayout:
    require(missing in MISSING_POLICIES, f"data.missing must be error, mean or drop, got {missing!r}.")
    require(0 < test_fraction < 1, f"data.test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}.")
    file = Path(path)
    frame = read_table(file, encoding)
    frame.columns = [str(c) for c in frame.columns]
    columns = list(frame.columns)
    for key, names in (("target", targets), ("features", features or ())):
        unknown = [n for n in names if n not in columns]
        require(not unknown, f"data.{key}: {unknown[:1]} is not a column of {file}; its columns are: "
                             f"{', '.join(columns[:12])}.")
    require(separator is None or len(targets) == 1, "data.label_separator reads one column of label lists; give "
                                                    "data.target=COLUMN, or 0/1 columns without a separator.")
    require(separator is not None or len(targets) >= 2, "data.target=[...] of several labels needs at least two 0/1 "
                                                        "columns; for one class per row give data.target=COLUMN.")
    chosen = list(features) if features else [c for c in columns if c not in targets]
    require(not set(chosen) & set(targets), "data.features includes a target column; leave it out.")
    require(bool(chosen), f"{file} has no column besides the targets; a model needs features.")
    blank = [t for t in targets if frame[t].isna().any()] if separator is None else []
    require(not blank, f"the target column {blank[:1]} of {file} has empty cells; a 0/1 column needs 0 or 1 in "
                       "every row.")
    if separator is not None:  # an empty cell of label lists: no label (data.allow_no_label decides)
        frame[targets[0]] = frame[targets[0]].fillna("")
    frame = _handle_missing(frame, file, targets[0], [*chosen, *targets[1:]], missing)
    where = [f"row {r}" for r in frame.index.tolist()]
    if separator is None:
        names = list(targets)
        matrix = indicator_matrix(frame, names, where, allow_no_label, str(file))
    else:
        texts = [str(v) for v in frame[targets[0]].tolist()]
        names, matrix = label_matrix(parse_label_sets(texts, separator, where), where, allow_no_label,
                                     source=f" in the column {targets[0]!r} of {file}")
    rest, test = random_split(len(frame), test_fraction, split_seed)
    keep, held = random_split(len(rest), val_fraction, split_seed)
    train, val = rest[keep], rest[held]
    encoder = TableEncoder.fit(frame.iloc[train], chosen, missing)
    return MultiLabelLayout(frame, chosen, names, matrix, train, test, encoder, val)


class MultiLabelCSVDataModule(CSVDataModule):
    """A table's rows as encoded feature vectors with (N, L) 0/1 targets (module docstring)."""

    def __init__(self, path: str, target: Any, features: Sequence[str] | None = None, missing: str = "error",
                 test_fraction: float = 0.2, encoding: str | None = None, label_separator: str | None = None,
                 allow_no_label: bool = False, task_model: str | None = None, **kwargs: Any) -> None:
        require(not kwargs.get("num_folds"), "data.num_folds needs one class per row to stratify its folds; a table "
                                             "with several labels per row validates on data.val_fraction instead.")
        InMemoryDataModule.__init__(self, **kwargs)
        self.path, self.targets = str(path), targets_of(target)
        self.target = ",".join(self.targets)
        self.features = list(features) if features else None
        self.missing, self.test_fraction, self.encoding = missing, float(test_fraction), encoding
        self.layout = multilabel_layout(self.path, self.targets, self.features, missing, test_fraction,
                                        self.val_fraction, self.split_seed, encoding, label_separator, allow_no_label)
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

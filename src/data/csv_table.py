"""`data=csv data.path=FILE data.target=COLUMN`: your own table (CSV, TSV, Excel or Parquet), one row per sample.

Files are read by `src/data/table_files.py` (delimiter and encoding detected).

Features are `data.features` (default: every column but the target); the classes are the target's
distinct values (sorted). Missing values (`data.missing`): `error` (default) stops with one sentence
naming the columns and the number of rows; `drop` leaves those rows out (counted in a warning);
`mean` fills them from the training split (numbers: the mean; other columns: the most frequent
value; a row without a target is still left out). A stratified test split (`test_fraction`) is held
out, validation is carved from the rest (`val_fraction`, or fold `fold` of `num_folds`), and the
encoding (`src/data/table_encoding.py`: standardised numbers, one-hot categories) is fitted on the
training split only. Samples are named by their row (0-based, header not counted) in reports.

The config reads the class count and the encoded width off the table (`${table:num_classes}`,
`${table:input_shape}`: `config_value` below), so any model takes `${data.input_shape}` as usual.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data.in_memory import InMemoryDataModule
from src.data.splits import Split, stratified_fold, stratified_split
from src.data.stratify import check_stratifiable
from src.data.table_encoding import (
    MISSING_POLICIES,
    TableEncoder,
    class_order,
    describe_missing,
    missing_counts,
)
from src.data.table_files import read_table
from src.errors import UserError, require

log = logging.getLogger(__name__)


@dataclass
class TableLayout:
    """A table made ready: rows kept, feature columns, classes, targets, splits and the fitted encoder."""

    frame: Any            # the rows kept (pandas DataFrame; its index is each row's number in the file)
    features: list[str]
    class_names: list[str]
    targets: np.ndarray   # class index per kept row
    rest: np.ndarray      # positions of the training + validation rows
    test: np.ndarray      # positions of the test rows
    encoder: TableEncoder  # fitted on the training rows (rest minus validation)


def _columns(frame, path: Path, target: str, features: Sequence[str] | None) -> list[str]:
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    for key, names in (("target", [target]), ("features", list(features or []))):
        unknown = [n for n in names if n not in columns]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), columns, n=1)
            hint = f"did you mean {close[0]}?" if close else f"its columns are: {', '.join(columns[:12])}."
            raise UserError(f"data.{key}: {', '.join(map(repr, unknown[:3]))} is not a column of {path}; {hint}")
    chosen = list(features) if features else [c for c in columns if c != target]
    require(target not in chosen, f"data.features includes the target column {target!r}; leave it out.")
    require(bool(chosen), f"{path} has no column besides the target {target!r}; a model needs features.")
    return chosen


def _handle_missing(frame, path: Path, target: str, features: list[str], missing: str):
    counts = missing_counts(frame, [*features, target])
    if not counts:
        return frame
    rows = int(frame[[*features, target]].isna().any(axis=1).sum())
    if missing == "error":
        raise UserError(f"{path} has missing values in {describe_missing(counts, rows)}: set data.missing=drop to "
                        "leave those rows out, or data.missing=mean to fill them from the training split (numbers: "
                        "the mean; other columns: the most frequent value).")
    drop = frame[[*features, target]].isna().any(axis=1) if missing == "drop" else frame[target].isna()
    if drop.any():
        log.warning("data.missing=%s: %d of %d rows of %s left out (missing %s).", missing, int(drop.sum()),
                    len(frame), path, "values: " + describe_missing(counts, rows) if missing == "drop" else "target")
    return frame[~drop]


def table_layout(path: str, target: str, features: Sequence[str] | None = None, missing: str = "error",
                 test_fraction: float = 0.2, val_fraction: float = 0.1, num_folds: int | None = None,
                 fold: int = 0, split_seed: int = 42, encoding: str | None = None) -> TableLayout:
    """Read and prepare a table as `CSVDataModule` does (cached while the file is unchanged)."""
    resolved = Path(str(path)).expanduser()
    require(resolved.is_file(),
            f"there is no table at {resolved}; pass data.path=FILE (a .csv, .xlsx or .parquet file).")
    stat = resolved.stat()
    return _layout(str(resolved.resolve()), stat.st_size, stat.st_mtime_ns, str(target),
                   tuple(features) if features else None, missing, float(test_fraction), float(val_fraction),
                   num_folds, int(fold), int(split_seed), encoding or None)


@lru_cache(maxsize=8)
def _layout(path: str, size: int, mtime_ns: int, target: str, features: tuple[str, ...] | None, missing: str,
            test_fraction: float, val_fraction: float, num_folds: int | None, fold: int,
            split_seed: int, encoding: str | None) -> TableLayout:
    require(missing in MISSING_POLICIES, f"data.missing must be error, mean or drop, got {missing!r}.")
    require(0 < test_fraction < 1, f"data.test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}.")
    file = Path(path)
    frame = read_table(file, encoding)
    chosen = _columns(frame, file, target, features)
    frame = _handle_missing(frame, file, target, chosen, missing)
    names = class_order(frame[target])
    require(len(names) >= 2, f"the target column {target!r} of {file} has {len(names)} distinct value(s); "
                             "classification needs at least two classes.")
    position = {name: i for i, name in enumerate(names)}
    targets = np.array([position[str(v)] for v in frame[target].tolist()], dtype=np.int64)
    where = f"{file}"
    check_stratifiable(targets.tolist(), names, test_fraction, None, "test", where)
    rest, test = (t.numpy() for t in stratified_split(torch.from_numpy(targets), test_fraction, split_seed))
    # Validation is carved from `rest` by InMemoryDataModule.setup; the same carve here tells which rows train.
    check_stratifiable(targets[rest].tolist(), names, val_fraction, num_folds, "validation",
                       f"the training rows of {file}")
    rest_targets = torch.from_numpy(targets[rest])
    keep, _ = (stratified_fold(rest_targets, num_folds, fold, split_seed) if num_folds
               else stratified_split(rest_targets, val_fraction, split_seed))
    encoder = TableEncoder.fit(frame.iloc[rest[keep.numpy()]], chosen, missing)
    return TableLayout(frame, chosen, names, targets, rest, test, encoder)


def config_value(key: str, data: Any) -> Any:
    """`${table:KEY}` in conf/data/csv.yaml: what the table and the data settings imply (several labels per row,
    and the classes of the task: src/data/multilabel.py)."""
    if key != "name" and (data.get("label_separator") or not isinstance(data.target, (str, int, float))):
        from src.data.multilabel import table_value
        return table_value(key, data)
    if key in ("data_module", "task_model"):
        return {"data_module": "src.data.csv_table.CSVDataModule",
                "task_model": "src.models.classifier.ClassificationModule"}[key]
    if key == "name":
        return Path(str(data.path)).stem or "table"
    features = data.get("features")
    layout = table_layout(data.path, data.target, list(features) if features else None, data.get("missing", "error"),
                          data.get("test_fraction", 0.2), data.get("val_fraction", 0.1), data.get("num_folds"),
                          data.get("fold", 0), data.get("split_seed", 42), data.get("encoding"))
    if key == "num_classes":
        return len(layout.class_names)
    if key == "input_shape":
        return [layout.encoder.width]
    raise UserError(f"${{table:{key}}} is unknown; use num_classes, input_shape or name.")


class CSVDataModule(InMemoryDataModule):
    """A table's rows as standardised, one-hot encoded feature vectors (module docstring)."""

    def __init__(self, path: str, target: str, features: Sequence[str] | None = None, missing: str = "error",
                 test_fraction: float = 0.2, encoding: str | None = None, label_separator: str | None = None,
                 allow_no_label: bool = False, task_model: str | None = None, **kwargs: Any) -> None:
        """`label_separator`, `allow_no_label`: tables of several labels per row (src/data/multilabel_table.py);
        `task_model`: the model class of the task (read by the model config)."""
        super().__init__(**kwargs)
        self.path, self.target = str(path), str(target)
        self.features = list(features) if features else None
        self.missing, self.test_fraction, self.encoding = missing, float(test_fraction), encoding
        self.layout = table_layout(self.path, self.target, self.features, missing, test_fraction, self.val_fraction,
                                   self.num_folds, self.fold, self.split_seed, encoding)
        self.class_names = list(self.layout.class_names)
        require(len(self.class_names) == self.num_classes,
                f"data.num_classes is {self.num_classes} but the target {self.target!r} of {self.path} has "
                f"{len(self.class_names)} values; leave data.num_classes to the config.")
        self.encoder: TableEncoder | None = None

    def load(self) -> tuple[Split, None, Split, list[str]]:
        layout = self.layout
        rows = [str(r) for r in layout.frame.index.tolist()]
        everything = Split(torch.arange(len(layout.targets)), torch.from_numpy(layout.targets), rows)
        return everything.subset(layout.rest), None, everything.subset(layout.test), list(layout.class_names)

    def encode_splits(self, train: Split, val: Split, test: Split) -> tuple[Split, Split, Split]:
        frame = self.layout.frame
        self.encoder = TableEncoder.fit(frame.iloc[train.inputs.numpy()], self.layout.features, self.missing)

        def encode(split: Split, name: str) -> Split:
            x = self.encoder.encode(frame.iloc[split.inputs.numpy()], what=f"the {name} split of {self.path}")
            return Split(torch.from_numpy(x), split.targets, split.names)

        return encode(train, "training"), encode(val, "validation"), encode(test, "test")

    def state_dict(self) -> dict[str, Any]:
        """The base state (class names) plus the fitted encoding and the target's name, for `src.predict`."""
        state = super().state_dict()
        if state and self.encoder is not None:
            state["table"] = {**self.encoder.state(), "target": self.target}
        return state

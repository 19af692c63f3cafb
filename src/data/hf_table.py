"""`data=hf` on a set without an `Image` column: its rows as the feature vectors of `data=csv`.

The numeric and text (or `ClassLabel`) columns are the features; numbers are standardised and other
columns one-hot encoded with `src/data/table_encoding.py`, fitted on the training rows only, and the
fitted encoding is stored in every checkpoint as a `data=csv` one is (so `src.predict` reads a table
file with the same columns). Missing values follow `data.missing` (error, drop, mean) as in `data=csv`.
`config_value` answers the config's `${hf:KEY}` for image and table sets alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from src.data.hf_source import Columns, Rows, display_name, inspect, open_dataset, own_splits, plan_splits, read_rows
from src.data.splits import stratified_fold, stratified_split
from src.data.table_encoding import MISSING_POLICIES, TableEncoder, describe_missing, missing_counts
from src.errors import UserError, require


@dataclass
class HFTable:
    """A table set made ready: its rows (one frame), their splits and the encoder of the training rows."""

    frame: Any
    columns: Columns
    rows: Rows
    train: np.ndarray
    val: np.ndarray | None
    test: np.ndarray
    encoder: TableEncoder


def _frame(dataset, columns: Columns, rows: Rows, missing: str, where: str):
    import pandas as pd

    frames = [dataset[split].select_columns([*columns.features]).to_pandas() for split, _, _ in rows.parts]
    frame = pd.concat(frames, ignore_index=True)
    counts = missing_counts(frame, list(columns.features))
    keep = np.ones(len(frame), dtype=bool)
    if counts and missing == "error":
        rows_missing = int(frame.isna().any(axis=1).sum())
        raise UserError(f"{where} has missing values in {describe_missing(counts, rows_missing)}: set "
                        "data.missing=drop to leave those rows out, or data.missing=mean to fill them from the "
                        "training split (numbers: the mean; other columns: the most frequent value).")
    if counts and missing == "drop":
        keep = ~frame.isna().any(axis=1).to_numpy()
    return frame, keep


@lru_cache(maxsize=4)
def hf_table(path: str, name: str | None, label_key: str | None, train_split: str, val_split: str | None,
             test_split: str | None, missing: str, test_fraction: float, val_fraction: float,
             num_folds: int | None, fold: int, split_seed: int) -> HFTable:
    """Read and prepare a table set as the data module serves it (cached per process)."""
    require(missing in MISSING_POLICIES, f"data.missing must be error, mean or drop, got {missing!r}.")
    columns = inspect(path, name, None, label_key, train_split, False)
    require(columns.image is None, f"{path} has the Image column {columns.image!r}; it is an image set.")
    dataset = open_dataset(path, name)
    train, val, test = own_splits(dataset, path, train_split, val_split, test_split)
    if num_folds:
        val = None  # folds are carved from the training split
    rows = read_rows(dataset, columns, [s for s in (train, val, test) if s])
    frame, keep = _frame(dataset, columns, rows, missing, path)
    names = list(columns.class_names)
    train_idx, val_idx, test_idx = plan_splits(rows, train, val, test, test_fraction, split_seed, names, path)
    train_idx, test_idx = train_idx[keep[train_idx]], test_idx[keep[test_idx]]
    val_idx = val_idx[keep[val_idx]] if val_idx is not None else None
    fitted = train_idx
    if val_idx is None:  # the carve of InMemoryDataModule.setup, to fit the encoder on the same rows
        targets = torch.from_numpy(rows.targets[train_idx])
        kept, _ = (stratified_fold(targets, num_folds, fold, split_seed) if num_folds
                   else stratified_split(targets, val_fraction, split_seed))
        fitted = train_idx[kept.numpy()]
    encoder = TableEncoder.fit(frame.iloc[fitted], list(columns.features), missing)
    return HFTable(frame, columns, rows, train_idx, val_idx, test_idx, encoder)


def table_of(data: Any) -> HFTable:
    """The prepared table of a data config (or the data module's arguments: same keys)."""
    get = data.get
    return hf_table(str(get("path")), get("name"), get("label_key"), str(get("train_split") or "train"),
                    get("val_split"), get("test_split"), str(get("missing") or "error"),
                    float(get("test_fraction", 0.2)), float(get("val_fraction", 0.1)), get("num_folds"),
                    int(get("fold", 0)), int(get("split_seed", 42)))


def table_width(data: Any) -> int:
    """`${hf:input_shape}` of a table set: the encoded width."""
    return table_of(data).encoder.width


def config_value(key: str, data: Any) -> Any:
    """`${hf:KEY}` in conf/data/hf.yaml: the class count and input shape the set and the settings imply."""
    if key == "dataset":
        return display_name(data.path, data.get("name"))
    columns = inspect(str(data.path), data.get("name"), data.get("image_key"), data.get("label_key"),
                      str(data.get("train_split") or "train"), bool(data.get("streaming")))
    if key == "num_classes":
        return len(columns.class_names)
    if key == "input_shape":
        if columns.image is not None:
            from src.data.image_folder_settings import check_channels, image_size_of

            return [check_channels(data.channels), *image_size_of(data.image_size, data.get("pretrained_model"))]
        return [table_width(data)]
    raise UserError(f"${{hf:{key}}} is unknown; use num_classes, input_shape or dataset.")

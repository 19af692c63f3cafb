"""What `data=hf` reads: a Hugging Face dataset opened through the `datasets` library, its columns and splits.

`data.path` is a Hub id (`beans`, `owner/name`: read through the library's cache, `HF_DATASETS_CACHE`;
downloaded once where there is network) or a local folder in the Hub's layout (Parquet shards under
`data/`, or a `DatasetDict` written by `save_to_disk`). `data.name` picks a configuration of a set
that has several. The columns: `data.image_key` (default: the first `Image` column) and
`data.label_key` (default: the first `ClassLabel` column, else an integer column named `label` or
`labels`). Without an `Image` column the set is a table: its numeric and text columns are the
features, encoded as `data=csv` encodes them. Class names come from the `ClassLabel` feature (an
integer label: its distinct values). Every mistake ends in one sentence (`open_dataset`,
`describe`). The config reads `${hf:num_classes}` and `${hf:input_shape}` off the set
(`config_value` in `src/data/hf_table.py`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from src.errors import UserError, require

log = logging.getLogger(__name__)

INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
NUMERIC_DTYPES = (*INTEGER_DTYPES, "float16", "float32", "float64", "bool")
TEXT_DTYPES = ("string", "large_string")
VALIDATION_SPLITS = ("validation", "valid", "val")


@dataclass(frozen=True)
class Columns:
    """The columns a run uses and the classes they hold."""

    image: str | None        # the Image column; None: a table
    label: str
    class_names: tuple[str, ...]
    label_values: tuple[int, ...] | None  # an integer label's distinct values (class i is label_values[i])
    features: tuple[str, ...]  # a table's feature columns


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _cache_folder() -> str:
    import datasets

    return str(datasets.config.HF_DATASETS_CACHE)


def open_dataset(path: str, name: str | None = None, streaming: bool = False, revision: str | None = None):
    """The `DatasetDict` (an `IterableDatasetDict` when `streaming`) of a Hub id or a local folder."""
    try:
        import datasets
    except ImportError:
        raise UserError("data=hf needs the datasets library; install it with: pip install '.[hf]' "
                        "(or pip install datasets).") from None
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    require(bool(str(path or "").strip()), "data.path is required: pass data.path=<Hub id or local folder>.")
    local = Path(str(path)).expanduser()
    try:
        if (local / "dataset_dict.json").is_file():  # save_to_disk's layout: read as saved (no streaming)
            loaded = datasets.load_from_disk(str(local))
            return loaded.to_iterable_dataset() if streaming and hasattr(loaded, "to_iterable_dataset") else loaded
        if (local / "dataset_info.json").is_file() or (local / "state.json").is_file():
            raise UserError(f"{local} holds one saved split, not a DatasetDict; save the whole set with "
                            "DatasetDict({'train': ...}).save_to_disk(FOLDER) and pass that folder.")
        where = str(local) if local.is_dir() else str(path)
        return datasets.load_dataset(where, name, streaming=streaming, revision=revision)
    except UserError:
        raise
    except ConnectionError as exc:
        if _offline():
            raise UserError(f"data.path={path} is not in the datasets cache {_cache_folder()} and HF_HUB_OFFLINE=1 "
                            "keeps the Hub out of reach; run once with network (without HF_HUB_OFFLINE) to "
                            "cache it, or set HF_DATASETS_CACHE to a cache that holds it.") from None
        raise UserError(f"the Hugging Face Hub could not be reached for data.path={path} ({exc}); check the "
                        "network, or set HF_HUB_OFFLINE=1 to read the datasets cache only.") from None
    except Exception as exc:  # the library's own errors: not found, gated, unknown configuration
        raise UserError(_explain(exc, path, name)) from None


def _explain(exc: Exception, path: str, name: str | None) -> str:
    text = " ".join(str(exc).split())
    kind = type(exc).__name__
    if "gated" in text.lower():
        return (f"data.path={path} is a gated dataset on the Hub: accept its terms on its page, then log in "
                "with `hf auth login` or set HF_TOKEN to a token of that account.")
    if "config" in text.lower() and (name is not None or "available" in text.lower()):
        available = text.split("vailable", 1)[1].lstrip(" :").replace("'", "")[:160] if "vailable" in text else ""
        return (f"data.name={name} is not a configuration of {path}"
                f"{'; its configurations are ' + available if available else ''}; pass data.name=<one of them>.")
    if kind in ("DatasetNotFoundError", "FileNotFoundError", "DataFilesNotFoundError", "EmptyDatasetError"):
        return (f"there is no dataset at data.path={path} (neither a local folder in the Hub's layout nor a Hub "
                f"id the library finds: {text[:160]}); pass a Hub id such as beans or a folder with data/*.parquet.")
    return f"the datasets library cannot open data.path={path} ({kind}: {text[:200]}); check data.path and data.name."


def split_names(dataset) -> list[str]:
    return [str(s) for s in dataset.keys()]


def check_split(dataset, key: str, split: str, path: str) -> str:
    names = split_names(dataset)
    require(split in names, f"data.{key}={split} is not a split of {path}; its splits are {', '.join(names)}.")
    return split


def own_splits(dataset, path: str, train_split: str, val_split: str | None,
               test_split: str | None) -> tuple[str, str | None, str | None]:
    """(train, validation or None, test or None): the named splits, or the set's own `validation` / `test`."""
    names = split_names(dataset)
    train = check_split(dataset, "train_split", train_split, path)
    val = check_split(dataset, "val_split", val_split, path) if val_split \
        else next((s for s in VALIDATION_SPLITS if s in names and s != train), None)
    test = check_split(dataset, "test_split", test_split, path) if test_split \
        else ("test" if "test" in names and train != "test" else None)
    return train, val, test


def _dtype(feature) -> str:
    return str(getattr(feature, "dtype", type(feature).__name__))


def describe(features, path: str, image_key: str | None, label_key: str | None) -> Columns:
    """The image, label and feature columns of `features` (a split's `Features`), found by type when not given."""
    from datasets import ClassLabel, Image, Value

    columns = list(features)
    for key, value in (("image_key", image_key), ("label_key", label_key)):
        require(value is None or value in columns,
                f"data.{key}={value} is not a column of {path}; its columns are {', '.join(columns[:12])}.")
    if label_key is None:
        label_key = next((c for c in columns if isinstance(features[c], ClassLabel)), None) or next(
            (c for c in ("label", "labels") if c in columns and _dtype(features[c]) in INTEGER_DTYPES), None)
    require(label_key is not None,
            f"{path} has no ClassLabel column and no integer label or labels column; name the class column "
            f"with data.label_key=<one of {', '.join(columns[:12])}>.")
    label = features[label_key]
    require(isinstance(label, ClassLabel) or (isinstance(label, Value) and label.dtype in INTEGER_DTYPES),
            f"the label column {label_key!r} of {path} is {_dtype(label)}, not a ClassLabel or integer column; "
            "pick the class column with data.label_key=COLUMN.")
    if image_key is None:
        image_key = next((c for c in columns if isinstance(features[c], Image)), None)
    elif not isinstance(features[image_key], Image):
        raise UserError(f"data.image_key={image_key} is a {_dtype(features[image_key])} column of {path}, not an "
                        "Image column; leave data.image_key out for a table of numbers and text.")
    names = tuple(str(n) for n in label.names) if isinstance(label, ClassLabel) else ()
    if image_key is not None:
        return Columns(image_key, label_key, names, None, ())
    usable = tuple(c for c in columns if c != label_key and isinstance(features[c], (Value, ClassLabel))
                   and (isinstance(features[c], ClassLabel) or features[c].dtype in NUMERIC_DTYPES + TEXT_DTYPES))
    require(bool(usable), f"{path} has no Image column and no numeric or text column besides {label_key!r}; "
                          "a model needs images (an Image column) or table features.")
    return Columns(None, label_key, names, None, usable)


def with_label_values(columns: Columns, values: list[int]) -> Columns:
    """An integer label's classes: its distinct values (sorted), named by themselves."""
    if columns.class_names:
        return columns
    ordered = tuple(sorted({int(v) for v in values}))
    require(len(ordered) >= 2, f"the label column {columns.label!r} has {len(ordered)} distinct value(s); "
                               "classification needs at least two classes.")
    return Columns(columns.image, columns.label, tuple(str(v) for v in ordered), ordered, columns.features)


@lru_cache(maxsize=4)
def inspect(path: str, name: str | None, image_key: str | None, label_key: str | None, train_split: str,
            streaming: bool) -> Columns:
    """The columns and classes of the set (read once per process for the config and the data module)."""
    dataset = open_dataset(path, name, streaming=streaming)
    check_split(dataset, "train_split", train_split, path)
    train = dataset[train_split]
    columns = describe(train.features, path, image_key, label_key)
    if not columns.class_names:
        labels = train.select_columns([columns.label])
        columns = with_label_values(columns, [row[columns.label] for row in labels] if streaming
                                    else labels[columns.label])
    return columns


def display_name(path: str, name: str | None) -> str:
    base = Path(str(path).rstrip("/")).name or str(path)
    return f"{base}-{name}" if name else base


@dataclass
class Rows:
    """Every row a run reads, in one order: the splits it uses one after another, with each row's class."""

    parts: list[tuple[str, int, int]]  # (split name, first position, end position)
    targets: Any                       # numpy int64: the class index of each row
    names: list[str]                   # `<split>/<row>`: how reports name a sample


def read_rows(dataset, columns: Columns, splits: list[str]) -> Rows:
    """The class of every row of `splits` (the label column only: no image is decoded)."""
    import datasets
    import numpy as np

    position = {v: i for i, v in enumerate(columns.label_values)} if columns.label_values else None
    parts, targets, names, start = [], [], [], 0
    for split in splits:
        labels = dataset[split].select_columns([columns.label])
        values = list(labels[columns.label]) if isinstance(labels, datasets.Dataset) \
            else [row[columns.label] for row in labels]  # a streamed split: read once, label column only
        require(all(v is not None and int(v) >= 0 for v in values),
                f"the {split} split has rows without a class in {columns.label!r}; drop them before training.")
        classes = [position.get(int(v), -1) if position else int(v) for v in values]
        require(-1 not in classes and (not classes or max(classes) < len(columns.class_names)),
                f"the {split} split has a class in {columns.label!r} that the training split lacks; every class "
                "must have training rows.")
        parts.append((split, start, start + len(values)))
        targets.extend(classes)
        names.extend(f"{split}/{i}" for i in range(len(values)))
        start += len(values)
    return Rows(parts, np.asarray(targets, dtype=np.int64), names)


def plan_splits(rows: Rows, train: str, val: str | None, test: str | None, test_fraction: float,
                split_seed: int, class_names: list[str], where: str):
    """(train, validation or None, test) positions in `rows`: the set's own splits, a test split carved
    (stratified, `test_fraction`) from a set with none. Validation and folds are then carved by the data
    module from the training positions, as for every data set."""
    import numpy as np
    import torch

    from src.data.splits import stratified_split
    from src.data.stratify import check_stratifiable

    span = {name: np.arange(a, b) for name, a, b in rows.parts}
    train_idx = span[train]
    require(len(train_idx) > 0, f"the {train} split of {where} is empty.")
    if test is None:
        check_stratifiable(rows.targets[train_idx].tolist(), class_names, test_fraction, None, "test", where)
        rest, held = stratified_split(torch.from_numpy(rows.targets[train_idx]), test_fraction, split_seed)
        train_idx, test_idx = np.sort(train_idx[rest.numpy()]), np.sort(train_idx[held.numpy()])
    else:
        test_idx = span[test]
    return train_idx, span[val] if val else None, test_idx

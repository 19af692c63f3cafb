"""Several labels per sample, on the data side: label sets read from text, 0/1 columns or a labels file, as
(N, num_labels) 0/1 float targets, and the seeded random splits they use (a stratified split needs one class
per sample); the layout of a table with several labels per row and the listing of an image folder with a
labels file, with the config values they imply (`${table:...}`, `${image_folder:...}`). Loaded only for
several labels per sample: by the data modules `multilabel_table.py`, `multilabel_images.py` and
`fashion_mnist_multilabel.py`, and by the config readers of data=csv and data=image_folder when chosen."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.errors import UserError, require

log = logging.getLogger(__name__)
MODULE = "src.models.multilabel.MultiLabelModule"   # the LightningModule of the task (data.task_model)
SEPARATOR = "|"
PARTS = ("train", "val", "test")  # split folders of an image folder


def random_split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions (kept, held out) with round(fraction * count) held out (at least one), seeded."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(int(seed))).numpy()
    held = max(1, int(round(fraction * count)))
    require(held < count, f"{count} samples are too few to hold out a share of {fraction}; add samples.")
    return np.sort(order[held:]), np.sort(order[:held])


def kfold_split(count: int, num_folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions (kept, held out) of fold `fold` of a shuffled, seeded `num_folds`-fold split."""
    from sklearn.model_selection import KFold  # (plain folds: a stratified one needs one class per sample)
    require(count >= num_folds, f"{count} training samples are too few for data.num_folds={num_folds}.")
    keep, held = list(KFold(n_splits=num_folds, shuffle=True, random_state=int(seed)).split(np.zeros(count)))[fold]
    return np.sort(keep), np.sort(held)


def validation_split(count: int, num_folds: int | None, fold: int, val_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) positions: fold `fold` of `num_folds`, else a random `val_fraction`."""
    return kfold_split(count, num_folds, fold, seed) if num_folds else random_split(count, val_fraction, seed)


def parse_label_sets(texts: Sequence[str], separator: str, where: Sequence[str]) -> list[list[str]]:
    """Each text split at `separator`, blanks dropped (`where[i]` names sample i in messages)."""
    require(bool(separator), "data.label_separator must be a non-empty string such as '|'.")
    return [[part.strip() for part in str(text).split(separator) if part.strip()] for text in texts]


def label_matrix(label_sets: Sequence[Sequence[str]], where: Sequence[str], allow_no_label: bool,
                 names: Sequence[str] | None = None, source: str = "") -> tuple[list[str], np.ndarray]:
    """(label names: `names` or the sorted distinct labels, (N, L) 0/1 float32 matrix); one sentence for a sample
    without a label (unless `allow_no_label`) and, with `names` given, for a label outside them."""
    found = sorted({label for labels in label_sets for label in labels})
    names = list(names) if names is not None else found
    position = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(label_sets), len(names)), dtype=np.float32)
    for row, labels in enumerate(label_sets):
        if not labels and not allow_no_label:
            raise UserError(f"{where[row]} has no label{source}; give every sample at least one label, or set "
                            "data.allow_no_label=true if a sample may have none.")
        for label in labels:
            if label not in position:
                raise UserError(f"{where[row]} has the unknown label {label!r}{source}; the labels are "
                                f"{', '.join(names[:12])}: fix the label or retrain with it.")
            matrix[row, position[label]] = 1.0
    require(len(names) >= 1, f"no sample has a label{source}; give every sample at least one label.")
    return names, matrix


def indicator_matrix(frame, columns: Sequence[str], where: Sequence[str], allow_no_label: bool,
                     source: str) -> np.ndarray:
    """The (N, L) 0/1 matrix of 0/1 target columns (numbers, or the text 0/1/true/false); one sentence for a
    column with any other value and for a row without a label (unless `allow_no_label`)."""
    out = np.zeros((len(frame), len(columns)), dtype=np.float32)
    words = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "false": 0.0, "true": 1.0}
    for j, column in enumerate(columns):
        for i, value in enumerate(frame[column].tolist()):
            text = str(value).strip().lower()
            if text not in words:
                raise UserError(f"the target column {column!r} of {source} is not 0/1: {where[i]} has {value!r}; "
                                "a target column of several labels holds 0 or 1 in every row.")
            out[i, j] = words[text]
    if not allow_no_label and (empty := np.flatnonzero(out.sum(1) == 0)).size:
        raise UserError(f"{where[empty[0]]} of {source} has no label (all of {', '.join(columns[:6])} are 0; "
                        f"{empty.size} row(s) in all); set data.allow_no_label=true if a sample may have none.")
    return out


def read_labels_file(path: str | Path, root: Path) -> dict[str, list[str]]:
    """{file relative to the image folder: its labels} from a CSV with the columns `file` and `labels`
    (labels separated by `|`); a relative `path` is taken in the image folder first, then as given."""
    candidates = [Path(path).expanduser()] if Path(path).is_absolute() else [root / path, Path(path).expanduser()]
    found = next((p for p in candidates if p.is_file()), None)
    require(found is not None, f"data.labels_file={path} is neither in {root} nor a file; give the path of a CSV "
                               "with the columns file and labels.")
    with open(found, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        require(reader.fieldnames is not None and {"file", "labels"} <= set(reader.fieldnames),
                f"{found} must have the columns file and labels (labels separated by |), got "
                f"{', '.join(reader.fieldnames or [])}.")
        labels: dict[str, list[str]] = {}
        for row in reader:
            name = Path(str(row["file"]).strip()).as_posix()
            labels[name] = [p.strip() for p in str(row["labels"] or "").split(SEPARATOR) if p.strip()]
    return labels


# --- tables: data=csv with several target columns or label lists (the data module: multilabel_table.py) ---
SINGLE_LABEL_TABLE = ("src.data.csv_table.CSVDataModule", "src.models.classifier.ClassificationModule")


def is_multilabel(data: Any) -> bool:
    """Several target columns, or one column of label lists."""
    return bool(data.get("label_separator")) or not isinstance(data.target, (str, int, float))


def table_value(key: str, data: Any) -> Any:
    """`${table:data_module}` and `${table:task_model}` (which classes the table's task takes), and the
    `${table:...}` values of a table with several labels per row."""
    several = is_multilabel(data)
    if key in ("data_module", "task_model"):
        classes = ("src.data.multilabel_table.MultiLabelCSVDataModule", MODULE) if several else SINGLE_LABEL_TABLE
        return classes[0] if key == "data_module" else classes[1]
    layout = multilabel_layout(data.path, list(targets_of(data.target)), data.get("features"), data.get("missing"),
                               data.get("test_fraction", 0.2), data.get("val_fraction", 0.1),
                               data.get("split_seed", 42),
                               data.get("encoding"), data.get("label_separator"), data.get("allow_no_label", False),
                               data.get("num_folds"), data.get("fold", 0))
    return len(layout.class_names) if key == "num_classes" else [layout.encoder.width]


def targets_of(target: Any) -> tuple[str, ...]:
    return (str(target),) if isinstance(target, (str, int, float)) else tuple(str(t) for t in target)


@dataclass
class MultiLabelLayout:
    """A table with several labels per row made ready (as csv_table.TableLayout, with a validation split)."""

    frame: Any              # the rows kept (pandas DataFrame; its index is each row's number in the file)
    features: list[str]
    class_names: list[str]  # the labels
    targets: np.ndarray     # (N, L) 0/1
    rest: np.ndarray        # positions of the training rows
    test: np.ndarray
    encoder: Any            # TableEncoder fitted on the training rows
    val: np.ndarray


def multilabel_layout(path: str, targets: Sequence[str], features: Sequence[str] | None, missing: str | None,
                      test_fraction: float, val_fraction: float, split_seed: int, encoding: str | None,
                      separator: str | None, allow_no_label: bool, num_folds: int | None = None,
                      fold: int = 0) -> MultiLabelLayout:
    resolved = Path(str(path)).expanduser()
    require(resolved.is_file(), f"there is no table at {resolved}; pass data.path=FILE (a .csv, .xlsx or .parquet).")
    stat = resolved.stat()
    return _layout(str(resolved.resolve()), stat.st_size, stat.st_mtime_ns, tuple(targets),
                   tuple(features) if features else None, missing or "error", float(test_fraction),
                   float(val_fraction), int(split_seed), encoding or None, separator or None, bool(allow_no_label),
                   num_folds or None, int(fold or 0))


@lru_cache(maxsize=8)
def _layout(path: str, size: int, mtime_ns: int, targets: tuple[str, ...], features: tuple[str, ...] | None,
            missing: str, test_fraction: float, val_fraction: float, split_seed: int, encoding: str | None,
            separator: str | None, allow_no_label: bool, num_folds: int | None, fold: int) -> MultiLabelLayout:
    require(0 < test_fraction < 1, f"data.test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}.")
    file = Path(path)
    from src.data.table_encoding import MISSING_POLICIES  # (pandas: loaded for tables only)
    from src.data.table_files import read_table
    require(missing in MISSING_POLICIES, f"data.missing must be error, mean or drop, got {missing!r}.")
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
    frame = _handle_missing_features(frame, file, chosen, missing)
    where = [f"row {r}" for r in frame.index.tolist()]
    if separator is None:
        names = list(targets)
        matrix = indicator_matrix(frame, names, where, allow_no_label, str(file))
    else:
        texts = [str(v) for v in frame[targets[0]].tolist()]
        names, matrix = label_matrix(parse_label_sets(texts, separator, where), where, allow_no_label,
                                     source=f" in the column {targets[0]!r} of {file}")
    rest, test = random_split(len(frame), test_fraction, split_seed)
    keep, held = validation_split(len(rest), num_folds, fold, val_fraction, split_seed)
    train, val = rest[keep], rest[held]
    from src.data.table_encoding import TableEncoder
    encoder = TableEncoder.fit(frame.iloc[train], chosen, missing)
    return MultiLabelLayout(frame, chosen, names, matrix, train, test, encoder, val)




def _handle_missing_features(frame, path: Path, features: list[str], missing: str):
    """Rows with missing feature values, by data.missing as data=csv treats them (`mean`: the encoder fills)."""
    from src.data.table_encoding import describe_missing, missing_counts
    counts = missing_counts(frame, features)
    if not counts:
        return frame
    incomplete = frame[features].isna().any(axis=1)
    require(missing != "error", f"{path} has missing values in {describe_missing(counts, int(incomplete.sum()))}: "
                                "set data.missing=drop to leave those rows out, or data.missing=mean to fill them "
                                "from the training split.")
    return frame[~incomplete] if missing == "drop" else frame


# --- image folders with a labels file (the data module: multilabel_images.py) ---
def list_labelled_images(root: str | Path, labels_file: str, allow_no_label: bool) -> tuple[Any, np.ndarray]:
    """(the `FolderListing` of every image under `root`, label names as its classes; (N, L) 0/1 targets)."""
    from src.data.image_folder_listing import FolderListing, _is_image
    root = Path(str(root)).expanduser()
    require(root.is_dir(), f"data.root={root} is not a folder; give the folder that holds the images.")
    labels = read_labels_file(labels_file, root)
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        where = Path(dirpath).relative_to(root).as_posix()
        files += [f if where == "." else f"{where}/{f}" for f in sorted(filenames) if _is_image(f)]
    require(bool(files), f"{root} holds no images; put the images of data.labels_file under it.")
    unlabelled = [f for f in files if f not in labels]
    require(not unlabelled, f"{root / unlabelled[0] if unlabelled else root} has no labels in {labels_file} "
                            f"({len(unlabelled)} image(s) without a row); add a row (file,labels) for every image.")
    if missing := [f for f in labels if f not in set(files)]:
        log.warning("%d row(s) of %s name no image under %s (first: %s); left out.", len(missing), labels_file, root,
                    missing[0])
    names, matrix = label_matrix([labels[f] for f in files], files, allow_no_label, source=f" in {labels_file}")
    split_dirs = any((root / p).is_dir() for p in PARTS)
    parts = [f.split("/", 1)[0] if split_dirs and f.split("/", 1)[0] in PARTS else "all" for f in files]
    require(not split_dirs or "train" in parts, f"{root} has val/ or test/ folders but no train/ folder of images.")
    return FolderListing(root, names, files, [0] * len(files), parts), matrix


def image_folder_value(key: str, data: Any) -> Any:
    if key == "data_module":
        return "src.data.multilabel_images.MultiLabelImageFolderDataModule"
    if key == "task_model":
        return MODULE
    return len(list_labelled_images(data.root, data.labels_file, data.get("allow_no_label", False))[0].classes)

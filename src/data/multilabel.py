"""Several labels per sample, on the data side: label sets read from text, 0/1 columns or a labels file, as
(N, num_labels) 0/1 float targets, and the seeded random splits they use (a stratified split needs one class
per sample). Loaded only by the multi-label data modules (`multilabel_table.py`, `multilabel_images.py`,
`fashion_mnist_multilabel.py`), which the data configs choose for several labels per sample."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from src.errors import UserError, require

MODULE = "src.models.multilabel.MultiLabelModule"   # the LightningModule of the task (data.task_model)
SEPARATOR = "|"


def random_split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions (kept, held out) with round(fraction * count) held out (at least one), seeded."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(int(seed))).numpy()
    held = max(1, int(round(fraction * count)))
    require(held < count, f"{count} samples are too few to hold out a share of {fraction}; add samples.")
    return np.sort(order[held:]), np.sort(order[:held])


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

"""Tables as model inputs: the encoding fitted on the training split (files are read by `table_files.py`).

`TableEncoder` turns the feature columns of a table into one float matrix:
- a numeric column (numbers, booleans) is standardised with the training split's mean and standard
  deviation (population std; a constant column is only centred);
- any other column is one-hot encoded with the categories the training split holds (sorted); a
  value not among them later (in validation, test or prediction) gives all zeros and is counted;
- a missing value, with `missing="mean"`, becomes the training split's mean (numbers) or its most
  frequent value (categories); with "error" and "drop" the data module never passes one on.
The fitted encoder is plain values (`state()`), stored in every checkpoint, so `src.predict` encodes
new rows exactly as training did without the training table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

MISSING_POLICIES = ("error", "mean", "drop")


def is_numeric(series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def missing_counts(frame, columns: Sequence[str]) -> dict[str, int]:
    """{column: rows with a missing value} for the columns of `columns` that have any."""
    counts = frame[list(columns)].isna().sum()
    return {str(c): int(n) for c, n in counts.items() if n}


def describe_missing(counts: dict[str, int], rows: int) -> str:
    parts = [f"{c} ({n} row{'s' if n != 1 else ''})" for c, n in counts.items()]
    return f"{', '.join(parts)}; {rows} row{'s' if rows != 1 else ''} in all"


@dataclass
class TableEncoder:
    """The fitted encoding of a table's feature columns (see the module docstring)."""

    features: list[str]
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)  # column: (mean, std)
    categories: dict[str, list[str]] = field(default_factory=dict)       # column: training categories
    fill: dict[str, Any] = field(default_factory=dict)                   # column: value for a missing one
    missing: str = "error"

    @classmethod
    def fit(cls, frame, features: Sequence[str], missing: str = "error") -> TableEncoder:
        """Statistics and categories of the training rows `frame`."""
        encoder = cls(list(features), missing=missing)
        for column in encoder.features:
            values = frame[column]
            if is_numeric(values):
                numbers = values.astype("float64")
                mean = float(numbers.mean()) if numbers.notna().any() else 0.0
                std = float(numbers.std(ddof=0)) if numbers.notna().sum() > 1 else 0.0
                encoder.numeric[column] = (mean, std if std > 0 else 1.0)
                encoder.fill[column] = mean
            else:
                present = values.dropna().astype(str)
                encoder.categories[column] = sorted(present.unique().tolist())
                encoder.fill[column] = str(present.mode().iloc[0]) if len(present) else ""
        return encoder

    @property
    def columns(self) -> list[str]:
        """Names of the encoded columns: numeric columns as they are, one-hot ones as `column=value`."""
        names: list[str] = []
        for column in self.features:
            names += [column] if column in self.numeric else [f"{column}={v}" for v in self.categories[column]]
        return names

    @property
    def width(self) -> int:
        return len(self.columns)

    def encode(self, frame, what: str = "rows") -> np.ndarray:
        """float32 (len(frame), width); a warning counts values of categories the training split lacked."""
        frame = frame[self.features]
        if self.missing == "mean":
            frame = frame.fillna({c: self.fill[c] for c in self.features})
        out = np.zeros((len(frame), self.width), dtype=np.float32)
        col = 0
        unseen: dict[str, int] = {}
        for column in self.features:
            values = frame[column]
            if column in self.numeric:
                mean, std = self.numeric[column]
                out[:, col] = ((values.astype("float64") - mean) / std).to_numpy(dtype=np.float64, na_value=np.nan)
                col += 1
                continue
            categories = self.categories[column]
            position = {v: i for i, v in enumerate(categories)}
            strings = values.astype(str).where(values.notna(), None)
            index = np.array([position.get(v, -1) if v is not None else -1 for v in strings.tolist()])
            known = index >= 0
            out[np.nonzero(known)[0], col + index[known]] = 1.0
            if (~known).sum():
                unseen[column] = int((~known).sum())
            col += len(categories)
        if unseen:
            counted = ", ".join(f"{n} in {c}" for c, n in unseen.items())
            log.warning("%s: %d value(s) of categories the training split lacks (%s) are encoded as all zeros.",
                        what, sum(unseen.values()), counted)
        return out

    def state(self) -> dict[str, Any]:
        """Plain values that rebuild this encoder (`TableEncoder.from_state`), stored in checkpoints."""
        return {"features": list(self.features), "numeric": {c: list(v) for c, v in self.numeric.items()},
                "categories": {c: list(v) for c, v in self.categories.items()}, "fill": dict(self.fill),
                "missing": self.missing, "columns": self.columns}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TableEncoder:
        return cls(list(state["features"]), {c: (float(m), float(s)) for c, (m, s) in state["numeric"].items()},
                   {c: list(v) for c, v in state["categories"].items()}, dict(state.get("fill") or {}),
                   str(state.get("missing", "error")))


def class_order(values) -> list[str]:
    """Sorted distinct target values as class names: numbers in numeric order, anything else as text."""
    distinct = values.dropna().unique().tolist()
    try:
        ordered = sorted(distinct)
    except TypeError:  # mixed types
        ordered = sorted(distinct, key=str)
    return [str(v) for v in ordered]

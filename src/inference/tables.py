"""Table rows for prediction: a CSV or Parquet file encoded with the encoding a checkpoint stores."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from src.data.table_encoding import TableEncoder, describe_missing, missing_counts
from src.data.table_files import read_table
from src.errors import UserError, require

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".xlsx", ".xlsm", ".parquet", ".pq")


def predict_table(model, prep, inputs: str, batch_size: int, device: torch.device) -> list[dict[str, Any]]:
    """One row per classified table row: `row` (0-based, header not counted), the target's value when the
    file has that column, `class`, `probability` (of that class) and `p_<class>` for every class.

    Missing feature values follow the training run's `data.missing`: `error` stops with one sentence,
    `drop` leaves those rows unclassified (counted in a warning), `mean` fills them from the training split."""
    path = Path(str(inputs)).expanduser()
    require(path.suffix.lower() in TABLE_SUFFIXES,
            f"the model was trained on the table {prep.data_name}, so inputs must be a table file "
            f"({', '.join(TABLE_SUFFIXES)}), not {path}.")
    frame = read_table(path)
    frame.columns = [str(c) for c in frame.columns]
    encoder = TableEncoder.from_state(prep.table)
    absent = [c for c in encoder.features if c not in frame.columns]
    require(not absent, f"{path} lacks the feature column(s) {', '.join(absent[:5])} the model was trained with; "
                        "add them.")
    counts = missing_counts(frame, encoder.features)
    if counts:
        incomplete = frame[encoder.features].isna().any(axis=1)
        detail = describe_missing(counts, int(incomplete.sum()))
        if encoder.missing == "error":
            raise UserError(f"{path} has missing values in {detail}; the model was trained with data.missing=error: "
                            "fill them, or train with data.missing=mean or drop.")
        if encoder.missing == "drop":
            log.warning("%d row(s) of %s with missing values are not classified (data.missing=drop): %s.",
                        int(incomplete.sum()), path, detail)
            frame = frame[~incomplete]
    x = torch.from_numpy(encoder.encode(frame, what=str(path)))
    probabilities = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            probabilities.append(model.predict_proba(prep.normalize(x[start : start + batch_size]).to(device)).cpu())
    p = torch.cat(probabilities) if probabilities else torch.zeros(0, len(prep.class_names))
    target = (prep.table or {}).get("target")
    rows: list[dict[str, Any]] = []
    for i, (row, values) in enumerate(zip(frame.index.tolist(), p.tolist())):
        best = max(range(len(values)), key=values.__getitem__)
        record: dict[str, Any] = {"row": row}
        if target and target in frame.columns:
            record[target] = frame[target].iloc[i]
        record |= {"class": prep.class_names[best], "probability": values[best]}
        record |= {f"p_{name}": v for name, v in zip(prep.class_names, values)}
        rows.append(record)
    return rows

"""Likely label errors of a k-fold sweep with several labels per sample (data.num_folds of a multi-label table,
image folder with a labels file, or the Fashion-MNIST mosaics): the out-of-fold probability of every label
(src/inspection/label_issues.py joins the folds' `val_predictions.csv`) and the given label sets go to
cleanlab's multi-label mode (`cleanlab.filter.find_label_issues(..., multi_label=True)`, ranked by
self-confidence; `label_quality` is `cleanlab.multilabel_classification.get_label_quality_scores`, lowest first).
`label_issues.csv` lists rank, sample, the given label set, the suggested one (the labels whose out-of-fold
probability is above 0.5; labels joined by `|`) and label_quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from cleanlab.filter import find_label_issues
from cleanlab.multilabel_classification import get_label_quality_scores

from src.inspection.label_issues import OutOfFold, fold_table
from src.runs.record import METRICS_FILE

SEPARATOR = "|"
TASK = "src.models.multilabel.MultiLabelModule"


def is_multilabel_sweep(sweep: str | Path) -> bool:
    """Whether the sweep's runs trained several labels per sample (their record's resolved data.task_model, or
    the job config's where it names the class itself)."""
    for job in sorted(Path(str(sweep)).expanduser().glob("*/.hydra/config.yaml")):
        record = job.parent.parent / METRICS_FILE
        if record.is_file():
            config = json.loads(record.read_text()).get("config") or {}
        else:
            config = yaml.safe_load(job.read_text()) or {}
        return str((config.get("data") or {}).get("task_model")) == TASK
    return False


def multilabel_out_of_fold(sweep: str | Path) -> OutOfFold:
    """The sweep's out-of-fold label probabilities; `labels` is each sample's list of given label indices."""
    table, names, jobs = fold_table(sweep)
    position = {name: i for i, name in enumerate(names)}
    sets = [[position[label] for label in str(text).split(SEPARATOR) if label]
            for text in table["true"].fillna("").astype(str)]
    probabilities = table[[f"p_{n}" for n in names]].to_numpy(dtype=np.float64)
    return OutOfFold(list(table.index), sets, probabilities, names, jobs)  # type: ignore[arg-type]


def multilabel_label_issues(oof: OutOfFold) -> pd.DataFrame:
    """cleanlab's multi-label label issues, most likely first: rank, sample, given, suggested, label_quality."""
    sets = list(oof.labels)
    probabilities = np.clip(oof.probabilities, 0.0, 1.0)
    ranked = find_label_issues(labels=sets, pred_probs=probabilities, multi_label=True,
                               return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(sets, probabilities)

    def joined(labels) -> str:
        return SEPARATOR.join(oof.class_names[i] for i in sorted(labels))

    return pd.DataFrame({
        "rank": np.arange(1, len(ranked) + 1),
        "sample": [oof.samples[i] for i in ranked],
        "given": [joined(sets[i]) for i in ranked],
        "suggested": [joined(np.flatnonzero(probabilities[i] > 0.5)) for i in ranked],
        "label_quality": quality[ranked].round(6),
    })

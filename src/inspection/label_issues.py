"""Likely label errors of a k-fold sweep's training data, from its out-of-fold predictions.

Every job of a cross-validation sweep (`data.num_folds`, one job per `data.fold`) wrote
`val_predictions.csv`: its validation fold predicted by a model that never trained on it. Together the
folds give every training sample such a prediction; cleanlab's confident learning
(`cleanlab.filter.find_label_issues`) then flags the samples whose given label the predictions
contradict. Several jobs per fold (seeds) are averaged. Outputs, in the sweep folder:
`label_issues.csv` (rank, sample, given and suggested label, self-confidence = the predicted
probability of the given label, lowest first) and, for images, `label_issues.png`, also in TensorBoard
(`<sweep>/tensorboard`, IMAGES tab `audit/label_issues`).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from cleanlab.filter import find_label_issues

from src.errors import require
from src.runs.predictions import VAL_PREDICTIONS_FILE as FILENAME

log = logging.getLogger(__name__)


@dataclass
class OutOfFold:
    """Every training sample's out-of-fold class probabilities and given label."""

    samples: list[str]
    labels: np.ndarray          # given class index per sample
    probabilities: np.ndarray   # (N, classes)
    class_names: list[str]
    jobs: list[Path]


def fold_jobs(sweep: Path) -> list[tuple[Path, int, int]]:
    """(job folder, num_folds, fold) of every job of the sweep; one sentence for a sweep that is not k-fold."""
    require(sweep.is_dir(), f"there is no folder at {sweep}; pass a k-fold sweep's folder, e.g. "
                            "python -m src.audit logs/train/multiruns/<stamp>.")
    jobs = []
    for config in sorted(sweep.glob("*/.hydra/config.yaml")):
        data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
        jobs.append((config.parent.parent, data.get("num_folds"), int(data.get("fold") or 0)))
    require(bool(jobs), f"{sweep} holds no runs (job folders with .hydra/config.yaml); pass the folder of a k-fold "
                        "sweep, e.g. one made by python -m src.train experiment=cv_digits.")
    without = [job.name for job, folds, _ in jobs if not folds]
    require(not without, f"the runs of {sweep} ({', '.join(without[:3])}) have no data.num_folds: the label audit "
                         "needs out-of-fold predictions of a k-fold sweep (experiment=cv_digits, or data.num_folds=5 "
                         "'data.fold=range(0,5)' -m), or python -m src.audit --run data=... folds=5.")
    counts = {folds for _, folds, _ in jobs}
    require(len(counts) == 1, f"the runs of {sweep} differ in data.num_folds ({sorted(counts)}); audit one k-fold "
                              "sweep at a time.")
    return jobs


def out_of_fold(sweep: str | Path) -> OutOfFold:
    """The sweep's out-of-fold predictions, joined sample by sample (several jobs per fold averaged)."""
    table, class_names, jobs = fold_table(sweep)
    position = {name: i for i, name in enumerate(class_names)}
    labels = np.array([position[str(t)] for t in table["true"]], dtype=np.int64)
    return OutOfFold(list(table.index), labels, table[[f"p_{c}" for c in class_names]].to_numpy(dtype=np.float64),
                     class_names, jobs)


def fold_table(sweep: str | Path) -> tuple[pd.DataFrame, list[str], list[Path]]:
    """(one row per training sample: `true` and the mean `p_<class>` of its out-of-fold predictions, the class
    names, the job folders) of a k-fold sweep; one sentence for a sweep that lacks some of them."""
    sweep = Path(str(sweep)).expanduser()
    jobs = fold_jobs(sweep)
    num_folds = jobs[0][1]
    missing = [job.name for job, _, _ in jobs if not (job / FILENAME).is_file()]
    require(not missing, f"the job(s) {', '.join(missing[:3])} of {sweep} have no {FILENAME} (a job that failed or "
                         "did not test, or a sweep of an older version); run the sweep again with its command.")
    absent = sorted(set(range(num_folds)) - {fold for _, _, fold in jobs})
    require(not absent, f"{sweep} lacks fold(s) {absent} of data.num_folds={num_folds}; every training sample needs "
                        "an out-of-fold prediction: run those folds into the same sweep folder.")
    frames = [pd.read_csv(job / FILENAME, dtype={"sample": str}) for job, _, _ in jobs]
    columns = [c for c in frames[0].columns if c.startswith("p_")]
    table = pd.concat(frames).groupby("sample", sort=False).agg({"true": "first", **{c: "mean" for c in columns}})
    return table, [c[2:] for c in columns], [job for job, _, _ in jobs]


def label_issues(oof: OutOfFold) -> pd.DataFrame:
    """cleanlab's label issues, most likely first: rank, sample, given, suggested, self_confidence."""
    probabilities = oof.probabilities / oof.probabilities.sum(1, keepdims=True)
    ranked = find_label_issues(labels=oof.labels, pred_probs=probabilities, return_indices_ranked_by="self_confidence")
    given = oof.labels[ranked]
    suggested = probabilities[ranked].argmax(1)
    return pd.DataFrame({
        "rank": np.arange(1, len(ranked) + 1),
        "sample": [oof.samples[i] for i in ranked],
        "given": [oof.class_names[i] for i in given],
        "suggested": [oof.class_names[i] for i in suggested],
        "self_confidence": probabilities[ranked, given].round(6),
        "suggested_probability": probabilities[ranked, suggested].round(6),
    })


def write_issues_csv(issues: pd.DataFrame, path: Path) -> None:
    issues.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)

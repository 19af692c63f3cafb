"""Two runs compared sample by sample on the same test set: their test predictions read from a run folder
(`test_predictions.csv`, written by `src.train`) or an eval report folder (`predictions.csv`, by `src.eval`),
checked to cover the same samples in the same order, then accuracy, McNemar's exact test, a bootstrap interval
of the accuracy difference, per-class differences and the samples the runs disagree on."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.errors import require
from src.runs.paired import RESAMPLES, bootstrap_difference, mcnemar_exact

PREDICTION_FILES = ("test_predictions.csv", "predictions.csv")  # a training run's, an eval report's


@dataclass
class Predictions:
    """One run's test predictions: per sample its name, true and predicted class."""

    folder: Path
    file: Path
    samples: list[str]
    true: list[str]
    predicted: list[str]
    labels: list[str] | None = None  # the `p_<class>` columns' names

    @property
    def several_labels(self) -> bool:
        """Label sets joined by `|` (src/models/multilabel_predictions.py): some sample has several or none."""
        return any("|" in v or not v for v in (*self.true, *self.predicted))

    @property
    def hamming(self) -> np.ndarray:
        """Per sample, the share of the labels predicted wrongly (in one set and not the other)."""
        count = max(len(self.labels or ()), 1)
        return np.array([len(set(filter(None, t.split("|"))) ^ set(filter(None, p.split("|")))) / count
                         for t, p in zip(self.true, self.predicted)])

    @property
    def correct(self) -> np.ndarray:
        return np.array([t == p for t, p in zip(self.true, self.predicted)], dtype=bool)

    @property
    def name(self) -> str:
        return self.folder.name


def prediction_file(folder: str | Path) -> Path | None:
    folder = Path(folder)
    return next((folder / name for name in PREDICTION_FILES if (folder / name).is_file()), None)


def read_predictions(folder: str | Path) -> Predictions:
    folder = Path(folder).expanduser()
    require(folder.is_dir(), f"there is no folder at {folder}; pass a run folder (logs/train/runs/<run>) or an eval "
                             "report folder (<run>/eval/<stamp>).")
    path = prediction_file(folder)
    require(path is not None,
            f"{folder} holds no test predictions (test_predictions.csv of src.train or predictions.csv of src.eval); "
            f"write them with python -m src.eval ckpt_path=<its checkpoint> and compare the report folder.")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    require(bool(rows) and {"sample", "true", "predicted"} <= set(rows[0]),
            f"{path} has no rows with sample, true and predicted columns; write it again with src.eval.")
    return Predictions(folder, path, [r["sample"] for r in rows], [r["true"] for r in rows],
                       [r["predicted"] for r in rows], [c[2:] for c in rows[0] if c.startswith("p_")])


def check_same_test_set(a: Predictions, b: Predictions) -> None:
    require(a.folder.resolve() != b.folder.resolve(),
            f"both arguments are {a.folder}; compare two different runs.")
    if a.samples == b.samples and a.true == b.true:
        return
    if len(a.samples) != len(b.samples):
        where = f"{len(a.samples)} and {len(b.samples)} test samples"
    else:
        first = next(i for i in range(len(a.samples)) if (a.samples[i], a.true[i]) != (b.samples[i], b.true[i]))
        where = f"sample {first + 1} is {a.samples[first]} ({a.true[first]}) in one and {b.samples[first]} " \
                f"({b.true[first]}) in the other"
    require(False, f"{a.folder} and {b.folder} were tested on different test sets ({where}); compare runs of the same "
                   "data with the same test split (data.test_fraction, data.split_seed).")


def compare_pair(a: Predictions, b: Predictions, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Accuracies, discordant counts, McNemar's p, the bootstrap interval and per-class accuracies."""
    check_same_test_set(a, b)
    right_a, right_b = a.correct, b.correct
    a_only, b_only = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    low, high = bootstrap_difference(right_a, right_b, resamples=resamples, seed=seed)
    classes = sorted(set(a.true), key=lambda c: (len(c), c))
    true = np.array(a.true)
    per_class = [{"class": c, "support": int((true == c).sum()), "acc_a": float(right_a[true == c].mean()),
                  "acc_b": float(right_b[true == c].mean())} for c in classes]
    for row in per_class:
        row["difference"] = row["acc_a"] - row["acc_b"]
    hamming = {}
    if a.several_labels or b.several_labels:  # accuracy is then the exact match; Hamming loss paired too
        low_h, high_h = bootstrap_difference(a.hamming, b.hamming, resamples=resamples, seed=seed)
        hamming = {"hamming_a": float(a.hamming.mean()), "hamming_b": float(b.hamming.mean()),
                   "hamming_ci_low": low_h, "hamming_ci_high": high_h}
    return hamming | {"a": str(a.folder), "b": str(b.folder), "samples": len(right_a), "acc_a": float(right_a.mean()),
            "acc_b": float(right_b.mean()), "difference": float(right_a.mean() - right_b.mean()),
            "a_right_b_wrong": a_only, "b_right_a_wrong": b_only, "mcnemar_p": mcnemar_exact(a_only, b_only),
            "ci_low": low, "ci_high": high, "resamples": resamples, "bootstrap_seed": seed, "per_class": per_class}


def disagreements(a: Predictions, b: Predictions) -> list[int]:
    """Positions of the samples one run got right and the other wrong."""
    return [int(i) for i in np.flatnonzero(a.correct != b.correct)]


def write_disagreements(path: Path, a: Predictions, b: Predictions, index: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["position", "sample", "true", "predicted_a", "predicted_b", "right"])
        for i in index:
            writer.writerow([i, a.samples[i], a.true[i], a.predicted[i], b.predicted[i], "a" if a.correct[i] else "b"])


def summary_lines(result: dict, name_a: str, name_b: str) -> list[str]:
    verdict = "a real difference at the 5 % level" if result["mcnemar_p"] < 0.05 else \
        "no evidence of a difference at the 5 % level"
    lines = [
        f"A = {name_a}: test accuracy {result['acc_a']:.4f} ({result['samples']} samples)",
        f"B = {name_b}: test accuracy {result['acc_b']:.4f}",
        f"difference A - B: {result['difference']:+.4f}, bootstrap 95 % interval [{result['ci_low']:+.4f}, "
        f"{result['ci_high']:+.4f}] ({result['resamples']:,} resamples, seed {result['bootstrap_seed']})",
        f"discordant samples: A right and B wrong {result['a_right_b_wrong']}, B right and A wrong "
        f"{result['b_right_a_wrong']}; McNemar's exact test p = {result['mcnemar_p']:.4g} ({verdict})",
    ]
    if "hamming_a" in result:  # several labels per sample: "right" is the exact match of the label set
        lines.append(f"several labels per sample: accuracy above is the exact match; Hamming loss A "
                     f"{result['hamming_a']:.4f}, B {result['hamming_b']:.4f}, difference A - B "
                     f"{result['hamming_a'] - result['hamming_b']:+.4f}, bootstrap 95 % interval "
                     f"[{result['hamming_ci_low']:+.4f}, {result['hamming_ci_high']:+.4f}]")
    return lines

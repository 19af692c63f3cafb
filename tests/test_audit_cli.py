"""`python -m src.audit`: 5 % of the labels flipped (seeded) in the digits table and in a Fashion-MNIST PNG folder;
the 5-fold label audit finds at least 60 % of them with a precision of at least 50 %. Measured here (CPU, these
settings): digits table 76 % found at 83 % precision; Fashion-MNIST folder 90 % at 86 % (docs/evaluation.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.own_data import needs_fashion_mnist, write_fashion_classes

FAST = ["trainer=cpu", "logger=none", "callbacks=[model_checkpoint,fold_predictions]", "trainer.max_epochs=10"]


def found_flipped(sweep: Path, flipped: set[str]) -> tuple[float, float]:
    """(recall, precision) of the audit's label issues against the flipped samples the folds saw."""
    seen = set(pd.concat(pd.read_csv(p, dtype={"sample": str}) for p in sweep.glob("*/val_predictions.csv"))["sample"])
    issues = set(pd.read_csv(sweep / "label_issues.csv", dtype={"sample": str})["sample"])
    flipped &= seen
    hits = len(issues & flipped)
    return hits / len(flipped), hits / max(len(issues), 1)


def test_flipped_digit_labels_are_found_in_a_5_fold_sweep_of_the_table(cli, cli_in_process, tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    labels = digits.target.copy()
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(labels), int(0.05 * len(labels)), replace=False)
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, len(flipped))) % 10
    frame = pd.DataFrame(digits.data.astype(int), columns=[f"px{i}" for i in range(64)])
    frame["digit"] = [f"d{v}" for v in labels]
    frame.to_csv(tmp_path / "digits.csv", index=False)

    sweep = tmp_path / "sweep"
    train = cli("src.train", "-m", "data=csv", "data.path=digits.csv", "data.target=digit", "model=mlp", *FAST,
                "data.num_folds=5", "data.fold=range(0,5)", f"hydra.sweep.dir={sweep}")
    assert train.returncode == 0, train.output
    audit = cli_in_process("src.audit", str(sweep))
    assert audit.returncode == 0, audit.output
    issues = pd.read_csv(sweep / "label_issues.csv")
    assert list(issues.columns) == ["rank", "sample", "given", "suggested", "self_confidence", "suggested_probability"]
    assert issues["self_confidence"].is_monotonic_increasing and (issues["given"] != issues["suggested"]).all()
    recall, precision = found_flipped(sweep, {str(i) for i in flipped})
    assert recall >= 0.6 and precision >= 0.5, (recall, precision)
    print(f"digits table: {recall:.0%} of the flipped labels found, precision {precision:.0%}")


@needs_fashion_mnist
def test_flipped_labels_of_an_image_folder_are_found_by_audit_run(cli, tmp_path):
    root = tmp_path / "fashion"
    files = write_fashion_classes(root, [0, 1, 7, 8], 250)
    rng = np.random.default_rng(0)
    flipped = set()
    for i in rng.choice(len(files), len(files) // 20, replace=False).tolist():
        others = [d for d in sorted(root.iterdir()) if d != files[i].parent]
        moved = others[rng.integers(len(others))] / files[i].name
        shutil.move(files[i], moved)
        flipped.add(moved.relative_to(root).as_posix())

    sweep = tmp_path / "sweep"
    result = cli("src.audit", "--run", "data=image_folder", "data.root=fashion", "data.image_size=28",
                 "data.channels=1", "model=mlp", *FAST, "folds=5", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.output
    recall, precision = found_flipped(sweep, flipped)
    assert recall >= 0.6 and precision >= 0.5, (recall, precision)
    print(f"Fashion-MNIST folder: {recall:.0%} of the flipped labels found, precision {precision:.0%}")
    assert (sweep / "label_issues.png").stat().st_size > 0
    assert list((sweep / "tensorboard").glob("events.out.tfevents.*"))


def fake_job(sweep: Path, name: str, num_folds, fold: int = 0) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(f"data:\n  num_folds: {num_folds}\n  fold: {fold}\n")
    return job


@pytest.mark.parametrize("case", ["not_a_folder", "no_runs", "no_folds", "no_predictions", "missing_fold"])
def test_audit_of_a_sweep_it_cannot_use_is_one_sentence(cli_in_process, tmp_path, case):
    sweep = tmp_path / "sweep"
    expected = {
        "not_a_folder": r"there is no folder at .*sweep; pass a k-fold sweep's folder",
        "no_runs": r"sweep holds no runs \(job folders with .hydra/config.yaml\)",
        "no_folds": r"the runs of .*sweep \(0\) have no data.num_folds: the label audit needs out-of-fold predictions",
        "no_predictions": r"the job\(s\) 0, 1 of .*sweep have no val_predictions.csv",
        "missing_fold": r"sweep lacks fold\(s\) \[1, 2\] of data.num_folds=3",
    }[case]
    if case != "not_a_folder":
        sweep.mkdir()
    if case == "no_folds":
        fake_job(sweep, "0", "null")
    if case == "no_predictions":
        fake_job(sweep, "0", 2, 0), fake_job(sweep, "1", 2, 1)
    if case == "missing_fold":
        (fake_job(sweep, "0", 3, 0) / "val_predictions.csv").write_text("sample,true,predicted,loss,p_a,p_b\n")
    result = cli_in_process("src.audit", str(sweep))
    assert result.returncode == 2, result.output
    import re

    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and re.search(expected, lines[0]), result.stderr

"""Label audit on real Fashion-MNIST images with labels moved on purpose: how many of the moved labels
`python -m src.audit --run` finds, and how many of its reported issues are moved ones.

    .venv/bin/python -m benchmarks.label_audit                  # all 10 classes, LeNet-5, 15 epochs per fold
    .venv/bin/python -m benchmarks.label_audit --classes 0 1 7 8 --per-class 250 --model mlp --epochs 10

The folder: `per_class` images of each class from the official test split (Debian's files) as PNG class
folders; 5 % of them (seeded) moved into another class's folder; then
`python -m src.audit --run data=image_folder data.root=<folder> data.image_size=28 data.channels=1
model=<model> trainer=cpu logger=none callbacks=[model_checkpoint,fold_predictions]
trainer.max_epochs=<epochs> folds=5`. Recall: moved labels among the reported issues / moved labels the
folds saw; precision: moved labels among the reported issues / reported issues. Minutes of CPU.
Prints a table and writes benchmarks/results/label_audit-<N>classes-<date>.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.cpu import write_results
from tests.own_data import FASHION_DIR, write_fashion_classes

ROOT = Path(__file__).resolve().parents[1]


def move_labels(root: Path, files: list[Path], fraction: float, seed: int) -> set[str]:
    """Move `fraction` of the files (seeded) into another class folder; the moved files, relative to root."""
    rng = np.random.default_rng(seed)
    moved = set()
    for i in rng.choice(len(files), int(len(files) * fraction), replace=False).tolist():
        others = [d for d in sorted(root.iterdir()) if d != files[i].parent]
        target = others[rng.integers(len(others))] / files[i].name
        shutil.move(files[i], target)
        moved.add(target.relative_to(root).as_posix())
    return moved


def scores(sweep: Path, moved: set[str]) -> tuple[float, float, int, int]:
    """(recall, precision, issues reported, moved labels the folds saw)."""
    seen = set(pd.concat(pd.read_csv(p, dtype={"sample": str}) for p in sweep.glob("*/val_predictions.csv"))["sample"])
    issues = set(pd.read_csv(sweep / "label_issues.csv", dtype={"sample": str})["sample"])
    moved &= seen
    hits = len(issues & moved)
    return hits / len(moved), hits / max(len(issues), 1), len(issues), len(moved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"Debian's dataset-fashion-mnist ({FASHION_DIR}) is not installed")
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="label_audit_"))
    root, sweep = work / "fashion", work / "sweep"
    moved = move_labels(root, write_fashion_classes(root, args.classes, args.per_class), args.fraction, args.seed)
    overrides = ["data=image_folder", f"data.root={root}", "data.image_size=28", "data.channels=1",
                 f"model={args.model}", "trainer=cpu", "logger=none", "callbacks=[model_checkpoint,fold_predictions]",
                 f"trainer.max_epochs={args.epochs}", "folds=5", f"hydra.sweep.dir={sweep}"]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "src.audit", "--run", *overrides], cwd=work,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"python -m src.audit --run failed:\n{proc.stderr[-3000:]}")
    recall, precision, issues, seen = scores(sweep, moved)
    row = {"classes": args.classes, "images": len(args.classes) * args.per_class, "moved": seen,
           "model": args.model, "epochs": args.epochs, "issues": issues, "recall": round(recall, 3),
           "precision": round(precision, 3), "seconds": round(seconds, 1)}
    print(f"{'classes':>8} {'images':>7} {'moved':>6} {'model':>6} {'epochs':>6} {'issues':>7} {'recall':>7} "
          f"{'precision':>9} {'seconds':>8}")
    print(f"{len(args.classes):>8} {row['images']:>7} {seen:>6} {args.model:>6} {args.epochs:>6} {issues:>7} "
          f"{recall:>7.0%} {precision:>9.0%} {seconds:>8.0f}")
    command = "python -m benchmarks.label_audit " + " ".join(sys.argv[1:])
    write_results(f"label_audit-{len(args.classes)}classes", command.strip(),
                  load_before=load_before, load_after=os.getloadavg(), result=row, overrides=overrides)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

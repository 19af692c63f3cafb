"""Prediction files of a model with several labels per sample (`test_predictions.csv`, src.eval's
`predictions.csv`): one row per sample with `sample`, `true` and `predicted` (label sets joined by `|`, empty
for none), `loss` (the sample's mean per-label binary cross-entropy) and `p_<label>` for every label."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

SEPARATOR = "|"


def sample_names(split) -> list[str]:
    """An image's file, a table's row, else the position in the split (as src/runs/predictions.py names them)."""
    return list(split.names) if split.names is not None else [str(i) for i in range(len(split))]


def label_set(row: list[int] | torch.Tensor, names: list[str]) -> str:
    return SEPARATOR.join(name for name, on in zip(names, [int(v) for v in row]) if on)


def write_multilabel_predictions(path: Path, split, probabilities: torch.Tensor, names: list[str],
                                 thresholds: torch.Tensor) -> None:
    """The file above; a label is predicted when its probability is above its threshold."""
    targets = split.targets.cpu().float()
    probabilities = probabilities.float().cpu()
    predicted = (probabilities > thresholds.float()).long()
    p = probabilities.clamp(1e-12, 1 - 1e-12)
    losses = -(targets * p.log() + (1 - targets) * (1 - p).log()).mean(1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sample", "true", "predicted", "loss", *(f"p_{name}" for name in names)])
        for name, t, q, loss, row in zip(sample_names(split), targets.long().tolist(), predicted.tolist(),
                                          losses.tolist(), probabilities.tolist()):
            writer.writerow([name, label_set(t, names), label_set(q, names), f"{loss:.6f}",
                             *(f"{v:.6f}" for v in row)])


def read_label_sets(path: Path) -> tuple[list[str], list[str], torch.Tensor, torch.Tensor, torch.Tensor]:
    """(label names, sample names, true (N, L) 0/1, predicted (N, L) 0/1, probabilities (N, L)) of such a file."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    names = [c[2:] for c in header if c.startswith("p_")]
    position = {n: i for i, n in enumerate(names)}

    def matrix(column: int) -> torch.Tensor:
        out = torch.zeros(len(body), len(names), dtype=torch.long)
        for r, row in enumerate(body):
            for label in filter(None, row[column].split(SEPARATOR)):
                out[r, position[label]] = 1
        return out

    first = header.index("p_" + names[0]) if names else len(header)
    probs = torch.tensor([[float(v) for v in row[first:first + len(names)]] for row in body])
    return names, [row[0] for row in body], matrix(header.index("true")), matrix(header.index("predicted")), probs

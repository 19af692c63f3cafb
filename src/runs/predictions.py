"""The prediction files of a run folder, sample by sample: `test_predictions.csv` (`src.train`'s test split, also
`src.baseline`'s), `val_predictions.csv` (a k-fold job's validation fold, read by `src.audit`) and the eval report's
`predictions.csv`; and which predictions are the most confidently wrong (the "top losses").

Every file has one row per sample: `sample` (an image's file, a table's row, else the position in the split),
`true`, `predicted`, `loss` (the cross-entropy -log p(true)) and `p_<class>` for every class.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

TEST_PREDICTIONS_FILE = "test_predictions.csv"
VAL_PREDICTIONS_FILE = "val_predictions.csv"


def sample_names(split) -> list[str]:
    return list(split.names) if split.names is not None else [str(i) for i in range(len(split))]


def write_predictions_csv(path: Path, split, probabilities: torch.Tensor, class_names: list[str]) -> None:
    targets = split.targets.cpu()
    predicted = probabilities.argmax(1)
    losses = -probabilities.gather(1, targets.view(-1, 1)).squeeze(1).clamp_min(1e-12).log()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sample", "true", "predicted", "loss", *(f"p_{name}" for name in class_names)])
        for name, t, p, loss, row in zip(sample_names(split), targets.tolist(), predicted.tolist(), losses.tolist(),
                                          probabilities.tolist()):
            writer.writerow([name, class_names[t], class_names[p], f"{loss:.6f}", *(f"{v:.6f}" for v in row)])


def most_confidently_wrong(targets: torch.Tensor, probabilities: torch.Tensor, limit: int) -> torch.Tensor:
    """Positions of wrong predictions, highest predicted probability first (at most `limit`)."""
    confidence, predicted = probabilities.max(1)
    wrong = torch.nonzero(predicted != targets.cpu()).flatten()
    order = confidence[wrong].argsort(descending=True, stable=True)
    return wrong[order][:limit]

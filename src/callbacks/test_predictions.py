"""Every test sample's prediction in the run folder (`test_predictions.csv`), so that two runs can be
compared sample by sample (`python -m src.compare`).

The file has the columns of `src.eval`'s `predictions.csv`: `sample` (an image's file, a table's row,
else the position in the test split), `true`, `predicted`, `loss` and `p_<class>` for every class.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

from src.inference.test_predictions import write_predictions_csv

FILE_NAME = "test_predictions.csv"
log = logging.getLogger(__name__)


class TestPredictionsCSV(L.Callback):
    """After `trainer.test`, the tested weights predict the test split again, in its order, and every
    sample's probabilities are written to `<out_dir>/test_predictions.csv` (first process only)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        split = getattr(datamodule, "test_split", None)
        if split is None or not trainer.is_global_zero:
            return
        if trainer.world_size > 1:  # each process's test loader holds only its share of the split
            log.info("%s is written by single-process runs only; src.eval writes predictions.csv for any run.",
                     FILE_NAME)
            return
        probabilities = test_split_probabilities(pl_module, datamodule.test_dataloader())
        names = [str(n) for n in getattr(datamodule, "class_names", None) or range(probabilities.shape[1])]
        write_predictions_csv(self.out_dir / FILE_NAME, split, probabilities, names)


@torch.no_grad()
def test_split_probabilities(module: L.LightningModule, loader) -> torch.Tensor:
    """(N, num_classes) probabilities over `loader`'s batches, in order, from `module.predict_step`."""
    was_training = module.training
    module.eval()
    outputs = [module.predict_step([x.to(module.device), y], i).float().cpu() for i, (x, y) in enumerate(loader)]
    module.train(was_training)
    return torch.cat(outputs)

"""Every test sample's prediction in the run folder (`test_predictions.csv`), so that two runs can be
compared sample by sample (`python -m src.compare`).

The file has the columns of `src.eval`'s `predictions.csv`: `sample` (an image's file, a table's row,
else the position in the test split), `true`, `predicted`, `loss` and `p_<class>` for every class. The
probabilities are those the test loop scored (`test_step` returns them), so no second pass is made.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch

from src.inference.test_predictions import write_predictions_csv

FILE_NAME = "test_predictions.csv"
log = logging.getLogger(__name__)


class TestPredictionsCSV(L.Callback):
    """Collects the class probabilities `test_step` returns, batch by batch, and after `trainer.test`
    writes them to `<out_dir>/test_predictions.csv` (single-process runs whose test loop saw the whole
    test split: the rows must be the split's samples, in its order)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.batches: list[torch.Tensor] = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches = []

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if isinstance(outputs, dict) and "probabilities" in outputs:
            self.batches.append(outputs["probabilities"].float().cpu())

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        split = getattr(trainer.datamodule, "test_split", None)
        batches, self.batches = self.batches, []
        if split is None or not batches or not trainer.is_global_zero:
            return
        if trainer.world_size > 1:  # each process's test loader holds only its share of the split
            log.info("%s is written by single-process runs only; src.eval writes predictions.csv for any run.",
                     FILE_NAME)
            return
        probabilities = torch.cat(batches)
        if len(probabilities) != len(split):  # trainer.limit_test_batches or fast_dev_run
            log.info("%s is not written: the test loop scored %d of the %d test samples.", FILE_NAME,
                     len(probabilities), len(split))
            return
        names = [str(n) for n in getattr(trainer.datamodule, "class_names", None) or range(probabilities.shape[1])]
        write_predictions_csv(self.out_dir / FILE_NAME, split, probabilities, names)

"""Every sample's prediction, as CSV: the test loop's class probabilities, kept (`TestProbabilities`: src.eval's
report uses them) or written into the run folder (`TestPredictionsCSV`: `test_predictions.csv`, so that two runs
can be compared sample by sample with `python -m src.compare`); and a k-fold run's validation fold predicted by
its best weights (`FoldPredictions`: `val_predictions.csv`). The folds of a sweep together predict every
training sample by a model that never trained on it (out-of-fold predictions), which `python -m src.audit SWEEP`
turns into likely label errors.

The file has the columns of `src.eval`'s `predictions.csv`: `sample` (an image's file, a table's row,
else the position in the test split), `true`, `predicted`, `loss` and `p_<class>` for every class.
The probabilities are those `test_step` returns for the test metrics, so no second pass is made.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch

from src.callbacks.confusion_matrix import class_names
from src.runs.predictions import TEST_PREDICTIONS_FILE, VAL_PREDICTIONS_FILE, write_predictions_csv

log = logging.getLogger(__name__)


class TestProbabilities(L.Callback):
    """After `trainer.test`, `probabilities` holds the (N, num_classes) class probabilities of the whole
    test split in its order; None where the loop saw part of it (`fast_dev_run`, `limit_test_batches`)
    or only its share of it (several processes)."""

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []
        self.probabilities: torch.Tensor | None = None

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches, self.probabilities = [], None

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.world_size == 1 and isinstance(outputs, dict) and "probabilities" in outputs:  # (see on_test_end)
            self.batches.append(outputs["probabilities"].float().cpu())

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        split = getattr(trainer.datamodule, "test_split", None)
        batches, self.batches = self.batches, []
        if split is None or not batches or trainer.world_size > 1:
            return
        probabilities = torch.cat(batches)
        if len(probabilities) != len(split):
            log.info("The test loop scored %d of the %d test samples.", len(probabilities), len(split))
            return
        self.probabilities = probabilities


class TestPredictionsCSV(TestProbabilities):
    """`TestProbabilities` written to `<out_dir>/test_predictions.csv` (first process only; not written
    when the loop did not score the whole split)."""

    def __init__(self, out_dir: str) -> None:
        super().__init__()
        self.out_dir = Path(out_dir)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_test_end(trainer, pl_module)
        if not trainer.is_global_zero:
            return
        if self.probabilities is None:
            log.info("%s is not written: the test loop did not score the whole test split in one process "
                     "(src.eval writes predictions.csv for any run).", TEST_PREDICTIONS_FILE)
            return
        write = getattr(pl_module, "write_predictions_csv", write_predictions_csv)  # a task's own columns
        write(self.out_dir / TEST_PREDICTIONS_FILE, trainer.datamodule.test_split, self.probabilities,
              class_names(trainer, self.probabilities.shape[1]))


class FoldPredictions(L.Callback):
    """Writes `<run>/val_predictions.csv` (the task's columns) in a k-fold run (nothing without `data.num_folds`)
    when testing starts: the weights are the best checkpoint's (`src.train` tests that one)."""

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not getattr(datamodule, "num_folds", None) or datamodule.val_split is None:
            return
        if trainer.world_size > 1:  # each process holds a shard of the validation batches
            log.warning("%s is written by one-process runs; this has %d.", VAL_PREDICTIONS_FILE, trainer.world_size)
            return
        probabilities = []
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            for batch in datamodule.val_dataloader():
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                probabilities.append(pl_module.predict_proba(x.to(pl_module.device)).float().cpu())
        getattr(pl_module, "write_predictions_csv", write_predictions_csv)(
            Path(trainer.default_root_dir) / VAL_PREDICTIONS_FILE, datamodule.val_split, torch.cat(probabilities),
            list(datamodule.class_names))

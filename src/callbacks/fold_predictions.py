"""`val_predictions.csv`: a k-fold run's validation fold predicted by its best weights, sample by sample.

A run with `data.num_folds` validates on one fold of the training data; the folds of a sweep together
predict every training sample by a model that never trained on it (out-of-fold predictions), which
`python -m src.audit SWEEP` turns into likely label errors. The file has the columns of `src.eval`'s
`predictions.csv` (`sample`: an image's file, a table's row, else the position in the training split).
Written when testing starts, so the weights are the best checkpoint's (`src.train` tests that one).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

from src.runs.predictions import VAL_PREDICTIONS_FILE, write_predictions_csv

log = logging.getLogger(__name__)


class FoldPredictions(L.Callback):
    """Writes `<run>/val_predictions.csv` in a cross-validation run (nothing without `data.num_folds`)."""

    def __init__(self, filename: str = VAL_PREDICTIONS_FILE) -> None:
        self.filename = filename

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not getattr(datamodule, "num_folds", None) or datamodule.val_split is None:
            return
        if trainer.world_size > 1:  # each process holds a shard of the validation batches
            log.warning("%s is written by single-process runs only; this one has %d processes.", self.filename,
                        trainer.world_size)
            return
        probabilities = []
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            for batch in datamodule.val_dataloader():
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                probabilities.append(pl_module.predict_proba(x.to(pl_module.device)).float().cpu())
        write_predictions_csv(Path(trainer.default_root_dir) / self.filename, datamodule.val_split,
                              torch.cat(probabilities), list(datamodule.class_names))

"""`callbacks=class_recall`: each class's test recall in the run's final metrics (`test/recall/<class>` in
metrics.json, so `src.report` shows them beside `test/balanced_acc`, their mean); with `val: true` also
`val/recall/<class>` every epoch. Read off the module's confusion matrix of the pass, before the module's own
epoch end logs its averages from it (callbacks' epoch-end hooks run first)."""

from __future__ import annotations

import re

import lightning as L


class ClassRecall(L.Callback):
    def __init__(self, val: bool = False, test: bool = True) -> None:
        self.val, self.test = val, test

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.val and not trainer.sanity_checking:
            self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.test:
            self._log(trainer, pl_module, "test")

    @staticmethod
    def _log(trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        metrics = getattr(pl_module, f"{split}_metrics", None)
        if metrics is None or not getattr(metrics, "count", 0):
            return
        matrix = metrics.confusion.compute().double()  # (summed over the processes)
        recall = (matrix.diagonal() / matrix.sum(1).clamp(min=1)).float()
        names = list(getattr(trainer.datamodule, "class_names", None) or [])
        if len(names) != len(recall):
            names = [str(i) for i in range(len(recall))]
        for name, value in zip(names, recall):
            pl_module.log(f"{split}/recall/{re.sub(r'[^A-Za-z0-9_.-]+', '_', str(name))}", value)

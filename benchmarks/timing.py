"""Callbacks that time a run from the inside (used by the benchmarks, not by the template)."""

from __future__ import annotations

import os
import time

import lightning as L


class FirstStepTimer(L.Callback):
    """Print the seconds from `$BENCH_T0` (set by the launching process) to the first training batch."""

    def __init__(self) -> None:
        self.done = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.done and "BENCH_T0" in os.environ:
            print(f"BENCH first-step-seconds {time.time() - float(os.environ['BENCH_T0']):.3f}", flush=True)
            self.done = True


class TrainEpochTimer(L.Callback):
    """Wall time of each epoch's training pass (first batch start to last batch end; validation excluded)."""

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == trainer.num_training_batches - 1:
            self.epoch_seconds.append(time.perf_counter() - self._start)

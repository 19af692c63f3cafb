"""Fault injection for the CLI tests: a callback that sends its own process a signal at exact moments, and
a sampler whose process stops itself while it draws a trial's parameters.

Added to a run as `+callbacks.signal._target_=tests.faults.SignalAt` with `moments` and `done_dir`
(and `signal`: SIGTERM, the default, SIGINT as Ctrl-C sends it, or SIGKILL as a lost node ends it; and
`after`: how many runs pass the moment untouched before one is signalled, e.g. the trials of a search):
each moment is `epoch_end@E` (after training epoch E ended), `train_batch@E:B` (after training batch
B of epoch E) or `val_batch@E:B` (after validation batch B of epoch E, not the sanity check). A
process sends at most one signal, at the first moment it reaches that no process has taken yet
(a file per moment in `done_dir` records it), so a resumed run that passes the same moment again
goes on, and the next resumption is interrupted at the next moment.

`StopWhileDrawing` is Optuna's TPE sampler, set as a search's sampler (`~hydra.sweeper.sampler
+hydra.sweeper.sampler._target_=tests.faults.StopWhileDrawing +hydra.sweeper.sampler.trial=N
+hydra.sweeper.sampler.marker=FILE`): when it draws the first parameter of trial N, its process writes its
id to `marker` and stops (SIGSTOP, every thread with it, as a swapped-out process or a paused machine
stops) until the test continues it (SIGCONT). Once the marker exists it draws as TPE does.
"""

from __future__ import annotations

import os
import signal as signal_module
from pathlib import Path

import lightning as L
import optuna


class SignalAt(L.Callback):
    def __init__(self, moments: list[str], done_dir: str, signal: str = "SIGTERM", after: int = 0) -> None:
        self.moments = [str(m) for m in moments]
        self.after = after
        self.done_dir = Path(done_dir)
        self.signal = getattr(signal_module, signal)
        self.sent = False

    def _reached(self, moment: str, trainer: L.Trainer) -> None:
        # One marker per process: under DDP every rank is signalled at the same moment, as SLURM signals every task.
        marker = self.done_dir / f"{moment.replace('@', '_').replace(':', '_')}_rank{trainer.global_rank}"
        if self.sent or moment not in self.moments or marker.exists():
            return
        self.done_dir.mkdir(parents=True, exist_ok=True)
        passed = len(list(self.done_dir.glob(f"{marker.name}_passed_*")))
        if passed < self.after:
            (self.done_dir / f"{marker.name}_passed_{passed}").touch()
            return
        marker.touch()
        self.sent = True
        os.kill(os.getpid(), self.signal)  # noted by a handler; the loops stop at their next check

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reached(f"epoch_end@{trainer.current_epoch}", trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._reached(f"train_batch@{trainer.current_epoch}:{batch_idx}", trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._reached(f"val_batch@{trainer.current_epoch}:{batch_idx}", trainer)


class StopWhileDrawing(optuna.samplers.TPESampler):
    def __init__(self, trial: int, marker: str, seed: int | None = None, **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        self.trial, self.marker = int(trial), Path(marker)

    def sample_independent(self, study, trial, param_name, param_distribution):
        if trial.number == self.trial and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal_module.SIGSTOP)  # until the test sends SIGCONT
        return super().sample_independent(study, trial, param_name, param_distribution)

"""Report a job's metric to its Optuna trial after every validation; stop the job when the trial is pruned.

The sweeper (src/sweeps/search.py) adds this callback to each job of a search with the job's study and
trial (`+callbacks.optuna_trial.storage=... study_name=... trial=N monitor=... pruner=...`), so a job
learns them from its own config. A pruned job stops as early stopping stops it (after the validation
in progress; its best checkpoint is still tested), writes `pruned.json` ("pruned at epoch N") in its run
folder, and the sweeper tells the study that the trial was PRUNED. Each validation also records the
number of epochs run as the trial's `epochs` attribute. `command` is the search's own command: a job
stopped by a signal names it as the way to resume (it queues the trial again), not `ckpt_path=...`, which
would train the trial outside its study.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from optuna.exceptions import UpdateFinishedTrialError

from src.runs.sweep import PRUNED_FILE
from src.sweeps.study import make_pruner, open_storage, trial_of


class OptunaTrial(L.Callback):
    def __init__(self, storage: str, study_name: str, trial: int, monitor: str, pruner: str = "none",
                 pruner_args: dict[str, Any] | None = None, command: str | None = None) -> None:
        self.storage, self.study_name, self.number, self.monitor = storage, study_name, int(trial), monitor
        self.resume_command = command  # what CheckpointOnInterrupt names to resume
        self.pruner, self.pruner_args = pruner, dict(pruner_args or {})
        self.trial: Any = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self.trial is None and rank_zero_only.rank == 0:
            pruner = make_pruner(self.pruner, self.pruner_args)
            self.trial = trial_of(open_storage(self.storage), self.study_name, self.number, pruner)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        # The trial lives in the first process; under DDP its decision goes to every process, which all stop.
        pruned = trainer.strategy.broadcast(self._report(trainer), src=0)
        if pruned:
            trainer.should_stop = True  # Lightning's way to end fit, as EarlyStopping does

    def _report(self, trainer: L.Trainer) -> bool:
        """Report this validation's value to the trial; whether the pruner stops the trial here."""
        if self.trial is None:
            return False
        epochs = trainer.current_epoch + 1
        value = trainer.callback_metrics.get(self.monitor)
        try:
            self.trial.set_user_attr("epochs", epochs)
            if value is None or self.pruner == "none" or not math.isfinite(float(value)):
                return False
            self.trial.report(float(value), step=epochs)
            if not self.trial.should_prune():
                return False
        except UpdateFinishedTrialError:  # failed by another process (a heartbeat came late), queued again
            self.trial = None
            return False
        message = f"pruned at epoch {epochs}: {self.monitor}={float(value):.4f}"
        folder = Path(trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / PRUNED_FILE).write_text(json.dumps(
            {"status": "pruned", "epoch": epochs, "monitor": self.monitor, "value": float(value), "message": message},
            indent=2) + "\n")
        print(f"Trial {self.number} {message}; the job stops here.", flush=True)
        return True

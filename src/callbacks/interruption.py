"""Ctrl-C or SIGTERM (e.g. a SLURM pre-emption): save a checkpoint, say how to resume, then exit."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException


class CheckpointOnInterrupt(L.Callback):
    """Writes `<run>/checkpoints/interrupted.ckpt` when training is interrupted; Lightning then ends
    the process (exit code 1 for Ctrl-C, the signal's for SIGTERM).

    The checkpoint resumes where training stood: between two training batches (the data loader's
    position is in it), at an epoch's end, or during validation, in which case the resumed run
    validates that epoch again from its first batch (the interrupted pass left no complete metrics).
    """

    def __init__(self, filename: str = "interrupted.ckpt") -> None:
        self.filename = filename
        self._saving_mid_validation = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING  # also when the signal lands during validation
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or not fitting:
            return
        folder = Path(trainer.checkpoint_callback.dirpath) if trainer.checkpoint_callback else (
            Path(trainer.default_root_dir) / "checkpoints")
        path = folder / self.filename
        self._saving_mid_validation = trainer.validating
        try:
            trainer.save_checkpoint(path)
        finally:
            self._saving_mid_validation = False
        if trainer.is_global_zero:
            where = "during validation of" if trainer.validating else "in"
            print(f"\nInterrupted {where} epoch {trainer.current_epoch}, step {trainer.global_step}: saved {path}\n"
                  f"Resume with: python -m src.train ckpt_path={shlex.quote(str(path))}", flush=True)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._saving_mid_validation:
            restart_validation(checkpoint)


def restart_validation(checkpoint: dict[str, Any]) -> None:
    """Record the validation pass in progress as started with no batch done.

    Lightning resumes a validation pass after the batches it counted as done, but neither the
    validation loader's position nor the partial metrics are in a checkpoint: it would compute the
    epoch's metrics on a part of the validation set, or (all counters equal) skip them, so that
    early stopping finds no `val/loss`. With "first batch started, none done", Lightning's own
    restart path runs the whole pass again. The counters are those of Lightning's loop state
    (`checkpoint["loops"]`); a checkpoint without them is left as it is.
    """
    fit_loop = checkpoint.get("loops", {}).get("fit_loop", {})
    progress = fit_loop.get("epoch_loop.val_loop.batch_progress")
    if not isinstance(progress, dict) or not {"current", "total"} <= progress.keys():
        return
    done_before = progress["total"]["completed"] - progress["current"]["completed"]  # earlier passes this epoch
    for tracker, base in ((progress["current"], 0), (progress["total"], done_before)):
        tracker.update(ready=base + 1, started=base + 1, processed=base, completed=base)
    progress["is_last_batch"] = False

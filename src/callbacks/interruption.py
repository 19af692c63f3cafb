"""Ctrl-C or SIGTERM (e.g. a SLURM pre-emption): save a checkpoint, say how to resume, then exit."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException


class CheckpointOnInterrupt(L.Callback):
    """Writes `<run>/checkpoints/interrupted.ckpt` when training is interrupted; Lightning then ends
    the process (exit code 1 for Ctrl-C, the signal's for SIGTERM)."""

    def __init__(self, filename: str = "interrupted.ckpt") -> None:
        self.filename = filename

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING  # also when the signal lands during validation
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or not fitting:
            return
        folder = Path(trainer.checkpoint_callback.dirpath) if trainer.checkpoint_callback else (
            Path(trainer.default_root_dir) / "checkpoints")
        path = folder / self.filename
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            print(f"\nInterrupted at epoch {trainer.current_epoch}, step {trainer.global_step}: saved {path}\n"
                  f"Resume with: python -m src.train ckpt_path={path}", flush=True)

"""Ctrl-C, SIGTERM (e.g. a SLURM pre-emption) or a submitit job's requeue signal (src/callbacks/requeue.py):
save a checkpoint, say how to resume, then exit (or let submitit requeue the job)."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from src.lightning_internals import restart_validation_pass, stop_at_next_batch_boundary


class CheckpointOnInterrupt(L.Callback):
    """Writes `<run>/checkpoints/interrupted.ckpt` when training is interrupted; the process then ends
    (`src.train`: exit code 130 for Ctrl-C, 143 for SIGTERM).

    The checkpoint resumes where training stood: between two training batches (the data loader's
    position is in it), at an epoch's end, or during validation, in which case the resumed run
    validates that epoch again from its first batch (the interrupted pass left no complete metrics).
    Ctrl-C stops training as SIGTERM does (Lightning notes the signal and stops between two batches),
    so that the checkpoint never holds half a step; a second Ctrl-C stops at once. (With several
    processes Ctrl-C keeps Python's immediate stop, and the checkpoint may hold half a step.) In a
    submitit job its requeue signal stops training the same way, and the job is requeued
    (src/callbacks/requeue.py). What stopped the run is kept on the callback for the entry point:
    `ctrl_c_pressed`, and `requeue` (the submitit job's requeue signal, `requeue.stopped` once it stopped the run).
    """

    def __init__(self, filename: str = "interrupted.ckpt") -> None:
        self.filename = filename
        self.ctrl_c_pressed = False
        self.requeue: Any = None  # a submitit job's requeue signal (src/callbacks/requeue.py)
        self._saving_mid_validation = False
        self._previous_handler: Any = None

    # --- Ctrl-C: stop where SIGTERM stops; a submitit job's requeue signal too ---------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.ctrl_c_pressed = False
        in_main_thread = threading.current_thread() is threading.main_thread()
        if trainer.world_size == 1 and in_main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous_handler = signal.signal(signal.SIGINT, self._on_ctrl_c)
        self._defer_requeue_signal()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._defer_requeue_signal()  # testing stops at a batch boundary too, and the job is requeued

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_requeue_signal()

    def _on_ctrl_c(self, signum: int, frame: Any) -> None:
        if self.ctrl_c_pressed or not stop_at_next_batch_boundary(frame):
            raise KeyboardInterrupt  # a second Ctrl-C (or no SIGTERM handler of Lightning's): stop at once
        self.ctrl_c_pressed = True
        print("\nStopping after the batch in progress (Ctrl-C again to stop at once) ...", flush=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_ctrl_c()
        self._restore_requeue_signal()

    def _restore_ctrl_c(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def _defer_requeue_signal(self) -> None:
        if self.requeue is None and "submitit" in sys.modules:  # a submitit job (submitit is loaded only there)
            from src.callbacks.requeue import submitit_requeue

            self.requeue = submitit_requeue()
        if self.requeue is not None:
            self.requeue.defer()

    def _restore_requeue_signal(self) -> None:
        if self.requeue is not None:
            self.requeue.restore()

    # --- the end of a stopped run ---------------------------------------------------------------
    def end_run(self) -> NoReturn:
        """End the process of the run this callback saw stopped (its checkpoint is saved): a submitit job's
        requeue signal goes on to submitit's handler (src/callbacks/requeue.py); otherwise exit 130 for Ctrl-C,
        143 for SIGTERM (128 + the signal's number)."""
        if self.requeue is not None and self.requeue.stopped:
            self.requeue.requeue()
        sys.exit(128 + (signal.SIGINT if self.ctrl_c_pressed else signal.SIGTERM))

    # --- the checkpoint ---------------------------------------------------------------------------
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_ctrl_c()
        self._restore_requeue_signal()
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
            # A search's trial resumes through the search (it queues the trial again), not on its own.
            search = next((c.resume_command for c in trainer.callbacks if getattr(c, "resume_command", None)), None)
            hint = (f"Resume the search with its own command: {search}" if search
                    else f"Resume with: python -m src.train ckpt_path={shlex.quote(str(path))}")
            print(f"\nInterrupted {where} epoch {trainer.current_epoch}, step {trainer.global_step}: saved {path}\n"
                  f"{hint}", flush=True)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._saving_mid_validation:
            restart_validation_pass(checkpoint)


def end_interrupted_run(trainer: L.Trainer) -> NoReturn:
    """End the process of a run that a signal stopped, as the trainer's `CheckpointOnInterrupt` saw
    it (`CheckpointOnInterrupt.end_run`); a run without that callback exits 143 (SIGTERM)."""
    stopper = next((c for c in trainer.callbacks if isinstance(c, CheckpointOnInterrupt)), None)
    if stopper is not None:
        stopper.end_run()
    sys.exit(128 + signal.SIGTERM)

"""Every use of a Lightning internal in this project, each where no public API does the job.

Lightning can change any of these in a release without notice. tests/training/test_lightning_internals.py
pins the Lightning version they were checked against (`CHECKED_LIGHTNING_VERSION`) and asserts each
structure used here: when Lightning is upgraded those tests fail, and each function below must be
checked against the new release before the pin moves.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

import lightning as L

CHECKED_LIGHTNING_VERSION = "2.6.6"


def ddp_finds_unused_parameters(strategy: Any) -> bool:
    """Whether a DDP strategy hands `find_unused_parameters=True` to `DistributedDataParallel`.

    Why an internal: `DDPStrategy` keeps the keyword arguments it passes to DDP in `_ddp_kwargs` and
    offers no accessor; the names `ddp_find_unused_parameters_true` etc. are only registry aliases."""
    return bool(getattr(strategy, "_ddp_kwargs", {}).get("find_unused_parameters"))


def attached_trainer(module: L.LightningModule) -> L.Trainer | None:
    """The Trainer running `module`, or None when it runs outside one (e.g. `src.predict`).

    Why an internal: the public `module.trainer` raises when no Trainer is attached, and the
    attachment is held in `_trainer` with no public "is attached" query."""
    return module._trainer


def stop_at_next_batch_boundary(frame: FrameType | None) -> bool:
    """Make the running fit or test stop as SIGTERM stops it: Lightning notes the signal and its loops
    raise `SIGTERMException` at the next batch boundary (so a checkpoint never holds half a step).
    False when no handler of Lightning's is installed (outside `trainer.fit` / `trainer.test`).

    Why an internal: Lightning has no public "stop at the next batch boundary with an exception" call
    (`trainer.should_stop` ends the epoch loop quietly, as if training had finished); its signal
    connector installs a SIGTERM handler during a run, which is called here as the signal would call it."""
    handler = signal.getsignal(signal.SIGTERM)
    if not callable(handler):
        return False
    handler(signal.SIGTERM, frame)
    return True


def _fit_loop_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The fit loop's saved progress counters: Lightning's `checkpoint["loops"]["fit_loop"]` (a layout
    of its loops' `state_dict`s, not a documented format)."""
    loops = checkpoint.get("loops")
    fit_loop = loops.get("fit_loop") if isinstance(loops, dict) else None
    return fit_loop if isinstance(fit_loop, dict) else {}


def epochs_trained(checkpoint: dict[str, Any]) -> int:
    """Epochs whose training pass finished in a checkpoint (a checkpoint written at the last epoch's
    validation has not yet counted that epoch "completed", but "processed"); falls back to the
    checkpoint's public `epoch` where the loop counters are absent.

    Why an internal: the per-epoch progress is only in the fit loop's saved counters."""
    total = _fit_loop_state(checkpoint).get("epoch_progress", {}).get("total", {})
    return int(total.get("processed", total.get("completed", checkpoint.get("epoch", 0))))


def restart_validation_pass(checkpoint: dict[str, Any]) -> None:
    """Record the validation pass in progress in `checkpoint` as started with no batch done.

    Lightning resumes a validation pass after the batches it counted as done, but neither the
    validation loader's position nor the partial metrics are in a checkpoint: it would compute the
    epoch's metrics on a part of the validation set, or (all counters equal) skip them, so that early
    stopping finds no `val/loss`. With "first batch started, none done", Lightning's own restart path
    runs the whole pass again. A checkpoint without these counters is left as it is.

    Why an internal: the counters live only in the fit loop's saved state
    (`"epoch_loop.val_loop.batch_progress"`), and no hook lets a callback restart a validation pass."""
    progress = _fit_loop_state(checkpoint).get("epoch_loop.val_loop.batch_progress")
    if not isinstance(progress, dict) or not {"current", "total"} <= progress.keys():
        return
    done_before = progress["total"]["completed"] - progress["current"]["completed"]  # earlier passes this epoch
    for tracker, base in ((progress["current"], 0), (progress["total"], done_before)):
        tracker.update(ready=base + 1, started=base + 1, processed=base, completed=base)
    progress["is_last_batch"] = False

"""A submitit job's requeue signal (`hydra/launcher=slurm` or `submitit_local`): SIGUSR2 by default, sent
`signal_delay_s` before the time limit. `CheckpointOnInterrupt` loads this only in a process that runs a
submitit job (submitit is imported there): the signal stops training where SIGTERM stops it, and once
`interrupted.ckpt` is saved, submitit's own handler requeues the job, which resumes from that checkpoint in
its folder."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from src.errors import UserError
from src.lightning_internals import stop_at_next_batch_boundary


class SubmititRequeue:
    """submitit's handler of its requeue signal, deferred: the signal first stops training at a batch boundary."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.handler: Callable[[int, Any], Any] | None = None  # submitit's, while ours is installed
        self.stopped = False  # the signal stopped the run: submitit's handler requeues it at the end

    def defer(self) -> None:
        """Install ours in place of submitit's handler (in the main thread, where signals are handled)."""
        if threading.current_thread() is not threading.main_thread():
            return
        handler = signal.getsignal(self.signum)
        if callable(handler) and handler != self._on_signal:  # submitit's handler is installed
            self.handler = handler
            signal.signal(self.signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stopped or self.handler is None:
            return  # already stopping
        self.stopped = True
        print(f"\nReceived {signal.Signals(signum).name} (the job's time limit or pre-emption): stopping after the "
              "batch in progress to save a checkpoint; then submitit requeues the job ...", flush=True)
        stop_at_next_batch_boundary(frame)

    def restore(self) -> None:
        if self.handler is not None and signal.getsignal(self.signum) == self._on_signal:
            signal.signal(self.signum, self.handler)

    def requeue(self) -> None:
        """Hand the signal to submitit's handler, which resubmits the job with the same arguments and exits; a
        job it may not requeue again (e.g. after hydra.launcher.max_num_timeout time limits) ends in one sentence."""
        refusal = getattr(sys.modules.get("submitit.core.utils"), "UncompletedJobError", RuntimeError)
        try:
            self.handler(self.signum, None)
        except refusal as exc:
            raise UserError(
                f"submitit did not requeue this job ({exc}); its checkpoint is kept in the job folder: start the "
                "sweep's own command again with hydra.sweep.dir=<its folder> to resume it, or allow more requeues "
                "with hydra.launcher.max_num_timeout=N."
            ) from exc


def submitit_requeue() -> SubmititRequeue | None:
    """The requeue signal of the submitit job this process runs (SIGUSR2, or what SUBMITIT_PREEMPT_SIGNAL names)."""
    name = getattr(getattr(sys.modules.get("submitit"), "JobEnvironment", None), "USR_SIG", None)
    signum = getattr(signal, f"SIG{name}", None) if name else None
    return SubmititRequeue(signum) if signum is not None else None

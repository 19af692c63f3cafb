"""Hydra's callback (`RunFolders`): what must be settled in the launching process, before any job runs. A run or
sweep folder that cannot be written stops the command with one sentence; a sweep's folder is decided once
(src/config/sweep_folder.py), so that every job of it writes into `<sweep>/<job number>/` whichever launcher
starts the jobs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.errors import exit_with_error as stop


def unwritable_reason(folder: Path) -> str | None:
    """Why `folder` cannot be created and written to, or None if it can (it is created)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write_test.{os.getpid()}"  # one per process: several may share a sweep folder
        probe.touch()
        probe.unlink()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


class RunFolders(Callback):
    """Stop with one sentence (exit 2) when the run or sweep folder cannot be written; pin a sweep's folder."""

    def _check(self, folder: str) -> None:
        reason = unwritable_reason(Path(folder).absolute())
        if reason:
            stop(f"cannot write the run folder {folder} ({reason}); choose a writable logs folder with "
                 "paths.log_dir=PATH.")

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from src.config.sweep_folder import pin_sweep_folder  # (sweeps only)

        pin_sweep_folder(config)
        self._check(config.hydra.sweep.dir)

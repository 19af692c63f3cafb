"""Hydra callbacks: checks that must run before Hydra creates the run folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def unwritable_reason(folder: Path) -> str | None:
    """Why `folder` cannot be created and written to, or None if it can (it is created)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write_test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


class CheckOutputFolder(Callback):
    """Stop with one sentence (exit 2) when the run or sweep folder cannot be written."""

    def _check(self, folder: str) -> None:
        reason = unwritable_reason(Path(folder).absolute())
        if reason:
            print(f"error: cannot write the run folder {folder} ({reason}); choose a writable logs folder with "
                  "paths.log_dir=PATH.", file=sys.stderr, flush=True)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir)

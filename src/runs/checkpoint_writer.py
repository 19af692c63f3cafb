"""How `src.train` writes checkpoints: atomically, with the run's configuration inside."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's `torch.save` checkpoints, written to a temporary file in the same folder, flushed to
    disk and renamed over the target: a process killed while saving leaves the previous checkpoint
    under that name whole (a rename within a folder replaces a file in one step), never a truncated one.
    Remote paths (`s3://...`) are written by Lightning's own writer. `contents` go into every checkpoint
    besides Lightning's: a training run's resolved config (`run_config`, from which `src.eval` rebuilds
    data and model) and its composition (`run_composition`: group choices and overrides, which a resume
    compares with the command resuming it), whichever callbacks write checkpoints."""

    def __init__(self, contents: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.contents = contents or {}

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        checkpoint = {**checkpoint, **self.contents}
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        _sync_folder(target.parent)
        for stale in target.parent.glob(f".{target.name}.*.partial"):  # left by a process killed while saving
            stale.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); skipped where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

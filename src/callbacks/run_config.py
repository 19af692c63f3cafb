"""Store the run's resolved configuration inside every checkpoint, as plain values."""

from __future__ import annotations

from typing import Any

import lightning as L


class RunConfigInCheckpoint(L.Callback):
    """`checkpoint["run_config"]`: lets `src.eval` rebuild data and model from the file alone."""

    def __init__(self, run_config: dict[str, Any]) -> None:
        self.run_config = run_config

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint["run_config"] = self.run_config

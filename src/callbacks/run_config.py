"""Store the run's resolved configuration inside every checkpoint, as plain values."""

from __future__ import annotations

from typing import Any

import lightning as L


class RunConfigInCheckpoint(L.Callback):
    """`checkpoint["run_config"]`: lets `src.eval` rebuild data and model from the file alone;
    `checkpoint["run_composition"]`: the group choices and overrides the run was composed from, so
    that resuming with the original command can tell an unchanged choice from a changed one."""

    def __init__(self, run_config: dict[str, Any], composition: dict[str, Any] | None = None) -> None:
        self.run_config = run_config
        self.composition = composition or {"choices": {}, "overrides": []}

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint["run_config"] = self.run_config
        checkpoint["run_composition"] = self.composition

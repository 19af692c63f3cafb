"""The test-set confusion matrix as a table: console, CSV in the run folder, TensorBoard text."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from rich.console import Console
from rich.table import Table


def class_names(trainer: L.Trainer, num_classes: int) -> list[str]:
    """The data module's class names, or the class indices where it has none of that length."""
    names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
    names = [str(n) for n in names] if names else []
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def confusion_table_rows(matrix: torch.Tensor, class_names: list[str]) -> list[list[str]]:
    """Rows `true_i` x columns `pred_j` (notes 3's pandas table), header row first."""
    header = [""] + [f"pred_{name}" for name in class_names]
    rows = [[f"true_{name}"] + [str(int(v)) for v in row] for name, row in zip(class_names, matrix.tolist())]
    return [header, *rows]


class ConfusionMatrixTable(L.Callback):
    """After `trainer.test`, print the confusion matrix, save it as CSV and log it to TensorBoard."""

    def __init__(self, csv_dir: str | None = None) -> None:
        self.csv_dir = csv_dir

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        matrix = getattr(pl_module, "test_confusion_matrix", None)
        if matrix is None or not trainer.is_global_zero:
            return
        names = class_names(trainer, len(matrix))
        rows = confusion_table_rows(matrix, [str(n) for n in names])
        self._print(rows)
        if self.csv_dir:
            Path(self.csv_dir).mkdir(parents=True, exist_ok=True)
            path = Path(self.csv_dir) / "confusion_matrix_test.csv"
            path.write_text("\n".join(",".join(r) for r in rows) + "\n")
        markdown = "\n".join("| " + " | ".join(r) + " |" for r in rows[:1] + [["---"] * len(rows[0])] + rows[1:])
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_text"):
                experiment.add_text("test/confusion_matrix", markdown, global_step=trainer.global_step)

    @staticmethod
    def _print(rows: list[list[str]]) -> None:
        table = Table(title="Test confusion matrix (rows: true class, columns: predicted class)")
        table.add_column("")
        for cell in rows[0][1:]:
            table.add_column(cell.removeprefix("pred_"), justify="right")
        for row in rows[1:]:
            table.add_row(row[0].removeprefix("true_"), *row[1:])
        Console().print(table)

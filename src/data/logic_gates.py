"""Two-input logic gates as a binary task: the 4-row truth table is train, val and test set."""

from __future__ import annotations

import torch

from src.data.in_memory import InMemoryDataModule
from src.data.splits import Split
from src.errors import require

TRUTH_TABLES = {
    "and": [0, 0, 0, 1],
    "or": [0, 1, 1, 1],
    "nand": [1, 1, 1, 0],
    "xor": [0, 1, 1, 0],
}
INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]


class LogicGatesDataModule(InMemoryDataModule):
    """The truth table of `gate`, served as one full batch (the notes train on all four rows)."""

    def __init__(self, gate: str = "xor", **kwargs) -> None:
        kwargs.setdefault("batch_size", None)
        kwargs.setdefault("val_fraction", 0.5)  # unused: the table is every split
        super().__init__(**kwargs)
        require(gate in TRUTH_TABLES, f"data.gate={gate!r} is not a gate; choose one of {sorted(TRUTH_TABLES)}.")
        self.gate = gate

    def load(self) -> tuple[Split, Split, Split, list[str]]:
        table = Split(torch.tensor(INPUTS), torch.tensor(TRUTH_TABLES[self.gate], dtype=torch.long))
        return table, table, table, ["0", "1"]

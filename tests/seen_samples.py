"""A callback for the CLI tests that records what each process trained on: one line per training sample,
the SHA-1 of its input tensor's bytes, in `<out_dir>/rank<global rank>.txt`. Added to a run as
`+callbacks.seen._target_=tests.seen_samples.SeenSamples +callbacks.seen.out_dir=DIR`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import torch


def sample_hashes(inputs: torch.Tensor) -> list[str]:
    return [hashlib.sha1(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest() for x in inputs]


class SeenSamples(L.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / f"rank{trainer.global_rank}.txt", "a") as f:
            f.writelines(h + "\n" for h in sample_hashes(batch[0]))

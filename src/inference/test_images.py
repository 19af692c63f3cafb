"""The test images of a run, rebuilt from its stored configuration, for figures drawn after the run
(`src.compare`'s grid of the samples two runs disagree on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def run_config_of(folder: Path) -> dict[str, Any] | None:
    """The run configuration behind a run folder (its metrics.json) or an eval report folder (the
    checkpoint its metrics.json names), or None where neither says."""
    from src.runs.record import read_record

    record = read_record(folder)
    if record is None:
        return None
    if isinstance(record.config, dict):
        return record.config
    ckpt_path = record.ckpt_path
    if ckpt_path and Path(ckpt_path).is_file():
        from src.runs.checkpoint import load_checkpoint

        return load_checkpoint(ckpt_path, tensors_on_demand=True)[1]["run_config"]
    return None


def test_images(folder: Path, index: list[int], num_samples: int) -> torch.Tensor | None:
    """Display images (N, H, W) or (N, H, W, 3) in [0, 1] of the run's test samples at `index`, or None
    when the data is not images or cannot be rebuilt here (its files moved, another test split)."""
    from src import builders
    from src.errors import UserError
    from src.figures.plots import as_display_images
    from src.runs.checkpoint import training_paths

    config = run_config_of(folder)
    data = (config or {}).get("data") or {}
    if len(data.get("input_shape") or []) != 3:
        return None
    try:
        datamodule = builders.build_datamodule(training_paths(config))
        datamodule.prepare_data()
        datamodule.setup("test")
    except (UserError, OSError):
        return None
    split = getattr(datamodule, "test_split", None)
    if split is None or len(split) != num_samples:
        return None
    raw = datamodule.display_inputs(split, torch.as_tensor(index, dtype=torch.long))
    if raw.ndim != 4:
        return None
    transform = getattr(datamodule, "transform", None)
    max_value = getattr(transform, "max_value", None) or (255.0 if raw.dtype == torch.uint8 else None)
    return torch.as_tensor(as_display_images(raw, max_value))

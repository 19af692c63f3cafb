"""The grid of a label audit's top issues: each training image titled "given:suggested:self-confidence"."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch

from src import builders
from src.errors import require
from src.figures.plots import as_display_images, prediction_grid_figure
from src.runs.checkpoint import load_checkpoint, training_paths

log = logging.getLogger(__name__)


def training_data_of(job: Path):
    """The data module of a sweep job, rebuilt from its checkpoint's configuration and set up."""
    checkpoints = sorted((job / "checkpoints").glob("*.ckpt"))
    require(bool(checkpoints), f"{job} has no checkpoint to rebuild its data from; the grid needs one (the label "
                               "issues themselves are in label_issues.csv).")
    _, ckpt = load_checkpoint(str(checkpoints[-1]), tensors_on_demand=True)
    datamodule = builders.build_datamodule({**training_paths(ckpt["run_config"]), "duplicates": "off"})
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def issue_images(datamodule, samples: list[str]) -> torch.Tensor | None:
    """The raw images (N, C, H, W) of the named training samples, or None for data that are not images."""
    where = {}
    for split in (datamodule.train_split, datamodule.val_split):
        for position, name in enumerate(split.names or []):
            where[str(name)] = (split, position)
    unknown = [s for s in samples if s not in where]
    require(not unknown, f"the samples {', '.join(unknown[:3])} are not in the sweep's training data any more (the "
                         "files changed since the sweep); run the sweep again.")
    images = [datamodule.display_inputs(where[s][0], torch.tensor([where[s][1]])) for s in samples]
    stacked = torch.cat(images) if images else None
    return stacked if stacked is not None and stacked.ndim == 4 else None


def issues_figure(job: Path, issues: pd.DataFrame, class_names: list[str], limit: int):
    """The grid of the `limit` most likely label errors, or None (no issue, or the data are not images)."""
    top = issues.head(limit)
    if top.empty:
        return None
    datamodule = training_data_of(job)
    raw = issue_images(datamodule, [str(s) for s in top["sample"]])
    if raw is None:
        return None
    max_value = getattr(datamodule.transform, "max_value", None) or (255.0 if raw.dtype == torch.uint8 else None)
    index = {name: i for i, name in enumerate(class_names)}
    return prediction_grid_figure(
        as_display_images(raw, max_value), [index[g] for g in top["given"]], [index[s] for s in top["suggested"]],
        class_names, title="likely label errors (given:suggested:self-confidence)",
        suffixes=[f":{c:.2f}" for c in top["self_confidence"]])

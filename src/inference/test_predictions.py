"""Every test sample's prediction, for `src.eval`'s report: `predictions.csv` and the "top losses" grid.

`predictions.csv` (written by src/runs/predictions.py) has one row per test sample: `sample` (an image's file
relative to the folder, a table's row number, else the sample's position in the test split), `true`, `predicted`,
`loss` (the cross-entropy -log p(true)) and `p_<class>` for every class. The top-losses grid shows the
most confidently wrong test images (highest probability of a wrong class first), each titled
`true:predicted:probability`, so that mislabelled or ambiguous images of your own data stand out.
"""

from __future__ import annotations

import torch

from src.figures.plots import as_display_images, prediction_grid_figure
from src.runs.predictions import most_confidently_wrong


def test_probabilities(trainer, model, datamodule) -> torch.Tensor:
    """(N, num_classes) class probabilities of the test split, in its order, as the Trainer computes them
    (device and precision as in the test run that preceded)."""
    outputs = trainer.predict(model, dataloaders=datamodule.test_dataloader())
    return torch.cat([o.float().cpu() for o in outputs]) if outputs else torch.zeros(0, model.num_classes)


def top_losses_figure(datamodule, probabilities: torch.Tensor, class_names: list[str], limit: int = 30,
                      ncols: int = 10):
    """The grid of the most confidently wrong test images, or None (no images, or no wrong prediction)."""
    split = datamodule.test_split
    index = most_confidently_wrong(split.targets, probabilities, limit)
    if len(index) == 0:
        return None
    raw = datamodule.display_inputs(split, index)
    if raw.ndim != 4:
        return None
    transform = getattr(datamodule, "transform", None)
    max_value = getattr(transform, "max_value", None) or (255.0 if raw.dtype == torch.uint8 else None)
    confidence, predicted = probabilities[index].max(1)
    title = "top losses (true:pred:probability)"
    return prediction_grid_figure(as_display_images(raw, max_value), split.targets.cpu()[index].tolist(),
                                  predicted.tolist(), class_names, ncols=ncols, title=title,
                                  suffixes=[f":{c:.2f}" for c in confidence.tolist()])

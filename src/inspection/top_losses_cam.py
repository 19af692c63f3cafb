"""`src.eval cam=true`: Grad-CAM and integrated gradients of the test images the model gets most confidently
wrong (`top_losses_cam.png`), for the predicted and the true class."""

from __future__ import annotations

import torch

from src.figures.plots import as_display_images
from src.inspection.cam import cam_figure, last_conv, maps_for
from src.runs.predictions import most_confidently_wrong


def top_losses_cam_figure(datamodule, module, probabilities: torch.Tensor, class_names: list[str], source: str,
                          limit: int = 12):
    """The maps of the `limit` most confidently wrong test images, or None (no wrong prediction, or no images).
    A net without convolutions stops with one sentence."""
    split = datamodule.test_split
    index = most_confidently_wrong(split.targets, probabilities, limit)
    if len(index) == 0:
        return None
    raw = datamodule.display_inputs(split, index).cpu()
    if raw.ndim != 4:
        return None
    transform = datamodule.transform
    x = (transform(raw.to(split.targets.device)) if transform else raw.float()).cpu()
    net = module.net.cpu()
    last_conv(net, x, source)
    predicted = probabilities[index].argmax(1).tolist()
    rows = maps_for(net, x, predicted, split.targets.cpu()[index].tolist(), class_names, source)
    max_value = getattr(transform, "max_value", None) or (255.0 if raw.dtype == torch.uint8 else None)
    return cam_figure(as_display_images(raw, max_value), rows, "top losses: where the model looks")

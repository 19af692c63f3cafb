"""What the entry points silence of their libraries' output: lines that appear twice or do not apply."""

from __future__ import annotations

import logging
import warnings


def quiet_library_noise() -> None:
    """Lightning prints its own INFO lines: stop them appearing twice through Hydra's root logger; drop
    warnings that do not apply to how the project logs."""
    logging.getLogger("lightning.pytorch").propagate = False
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")  # per-epoch logging
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")  # Lightning's loops, torch >= 2.10
    # TensorBoard's GRAPHS tab: Lightning traces the model with torch.jit, deprecated in recent PyTorch.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace(_method)?` is deprecated")
    # Epoch metrics come from a confusion matrix torchmetrics already summed over processes.
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")

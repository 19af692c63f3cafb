"""What a run prints: its final metrics as plain floats and one line on the console, and the library output it
silences (lines that would appear twice or do not apply)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

ORDER = ("acc", "loss", "f1", "precision", "recall")


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Plain floats of Lightning's callback metrics (tensors or numbers)."""
    out = {}
    for key, value in metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return dict(sorted(out.items()))


def one_line(metrics: Mapping[str, float], prefix: str = "test/") -> str:
    """'test: acc=0.9722 loss=0.0912 f1=0.9719 ...' (the main metrics first)."""
    names = [k[len(prefix):] for k in metrics if k.startswith(prefix)]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return f"{prefix.rstrip('/')}: " + " ".join(f"{n}={metrics[prefix + n]:.4f}" for n in names)


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

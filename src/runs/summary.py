"""Final metrics of a run: plain floats, and one line on the console."""

from __future__ import annotations

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


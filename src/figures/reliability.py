"""The reliability diagram: per confidence bin, how often the top class was right against how sure the
model was; a calibrated model's bars follow the diagonal."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from matplotlib.figure import Figure

from src.figures.plots import new_figure


def reliability_figure(bins: Mapping[str, torch.Tensor], title: str, metrics: Mapping[str, float] | None = None
                       ) -> Figure:
    """Bars of accuracy per confidence bin (`src.models.calibration.reliability_bins`), the gap to the bin's
    mean confidence shaded, the diagonal dashed, and the samples per bin below."""
    edges = bins["edges"].tolist()
    width = edges[1] - edges[0]
    left = edges[:-1]
    filled = (bins["count"] > 0).tolist()
    accuracy = [a if f else 0.0 for a, f in zip(bins["accuracy"].tolist(), filled)]
    confidence = [c if f else 0.0 for c, f in zip(bins["confidence"].tolist(), filled)]
    fig = new_figure(5.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(left, accuracy, width=width, align="edge", color="#1f77b4", edgecolor="white", label="accuracy")
    gap_bottom = [min(a, c) for a, c in zip(accuracy, confidence)]
    gap = [abs(c - a) if f else 0.0 for a, c, f in zip(accuracy, confidence, filled)]
    top.bar(left, gap, bottom=gap_bottom, width=width, align="edge", color="#d62728", alpha=0.35,
            label="gap to mean confidence")
    top.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=title)
    top.legend(loc="upper left", fontsize=8)
    if metrics:
        text = "\n".join(f"{k.upper() if k != 'brier' else 'Brier'} = {v:.4f}" for k, v in metrics.items())
        top.text(0.98, 0.02, text, ha="right", va="bottom", fontsize=9, transform=top.transAxes)
    bottom.bar(left, bins["count"].tolist(), width=width, align="edge", color="grey")
    bottom.set(xlabel="confidence (top-class probability)", ylabel="samples")
    return fig

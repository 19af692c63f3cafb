"""Figures for TensorBoard and report folders: confusion matrix, prediction grid, learning curves.

Drawn on plain matplotlib `Figure` objects with the Agg canvas: no pyplot, no window, no global
backend switch, nothing kept alive after the figure is rendered. `to_rgb` gives the (H, W, 3)
uint8 array that `SummaryWriter.add_image(..., dataformats="HWC")` takes; `save_png` writes a file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

WRONG = "#d62728"  # matplotlib's red: wrong predictions
RIGHT = "#1a1a1a"


def new_figure(width: float, height: float, dpi: int = 100, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def to_rgb(fig: Figure) -> np.ndarray:
    """The rendered figure as an (H, W, 3) uint8 array."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", facecolor="white")
    return path


# --- confusion matrix ------------------------------------------------------------------------------
def confusion_matrix_figure(matrix: torch.Tensor | np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """Two panels: the counts, and the counts normalised by true class (rows sum to 1: the diagonal
    is each class's recall), each with a colour bar, class names on both axes and, for up to 20
    classes, the value in every cell that holds a sample (an empty, white cell is zero: a trained
    model's matrix is mostly zeros, and a label per cell is most of the figure's drawing time)."""
    counts = np.asarray(matrix, dtype=np.int64)
    n = len(counts)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = counts / np.maximum(rows, 1)
    total, correct = int(counts.sum()), int(np.trace(counts))
    side = min(10.0, max(4.0, 0.42 * n + 2.2))  # inches per panel
    font = 10 if n <= 10 else 8 if n <= 20 else 6
    fig = new_figure(2 * side + 1.2, side + 0.6, dpi=100 if n <= 30 else 80, layout=None)
    _fixed_margins(fig, class_names, font)
    axes = fig.subplots(1, 2)
    panels = (
        (axes[0], counts, "counts", "d", max(int(counts.max()), 1)),
        (axes[1], normalised, "normalised by true class (diagonal = recall)", ".2f", 1.0),
    )
    for ax, values, subtitle, fmt, vmax in panels:
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax, interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
        ax.set_title(subtitle, fontsize=11)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        _class_ticks(ax, class_names, font)
        if n <= 20:
            for i, j in zip(*np.nonzero(counts)):
                value = values[i, j]
                ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=font - 1,
                        color="white" if value > 0.55 * vmax else "black", in_layout=False)
    accuracy = correct / total if total else 0.0
    fig.suptitle(f"{title}: accuracy {accuracy:.4f} ({correct}/{total})", fontsize=13)
    return fig


def _fixed_margins(fig: Figure, names: Sequence[str], font: int) -> None:
    """Room for the titles, axis labels, tick labels and colour bars, worked out from the label lengths:
    a layout engine would measure every text by drawing it, which takes longer than the figure itself."""
    width, height = fig.get_size_inches()
    char = 0.6 * font / 72  # inches per character of a tick label
    longest = max((len(str(s)) for s in names), default=1)
    ticks = char * min(longest, 30)
    below = 0.5 + (0.75 * ticks + font / 72 if longest > 2 else 1.6 * font / 72)  # x label + (rotated) ticks
    left = 0.45 + ticks  # y label + tick labels
    gap = 0.55 + left  # the numbers of the left panel's colour bar, then the right panel's y labels
    panel = (width - left - 0.7 - gap) / 2  # 0.7 in: the numbers of the right colour bar
    fig.subplots_adjust(left=left / width, right=1 - 0.7 / width, bottom=below / height, top=1 - 0.85 / height,
                        wspace=gap / panel)


def _class_ticks(ax, names: Sequence[str], font: int) -> None:
    n = len(names)
    step = max(1, math.ceil(n / 40))  # at most ~40 labels per axis
    ticks = list(range(0, n, step))
    labels = [str(names[i]) for i in ticks]
    ax.set_xticks(ticks, labels, fontsize=font)
    ax.set_yticks(ticks, labels, fontsize=font)
    if max((len(s) for s in labels), default=0) > 2:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")


# --- prediction grid -------------------------------------------------------------------------------
def as_display_images(images: torch.Tensor, max_value: float | None = None) -> np.ndarray:
    """(N, C, H, W) raw pixels in [0, max_value] -> (N, H, W) or (N, H, W, 3) floats in [0, 1].

    Without `max_value` each image is stretched to its own min..max (for data already normalised).
    """
    x = images.detach().float().cpu()
    if max_value:
        x = x / float(max_value)
    else:
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        high = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - low) / (high - low).clamp(min=1e-12)
    x = x.clamp(0, 1)
    if x.shape[1] == 1:
        return x[:, 0].numpy()
    if x.shape[1] != 3:
        x = x[:, :1].expand(-1, 3, -1, -1)  # show the first channel of other channel counts
    return x.permute(0, 2, 3, 1).numpy()


def prediction_grid_figure(
    images: np.ndarray, targets: Sequence[int], predictions: Sequence[int], class_names: Sequence[str],
    ncols: int = 10, title: str | None = None, suffixes: Sequence[str] | None = None,
) -> Figure:
    """A grid of images titled "true:pred" (plus `suffixes[k]`, e.g. ":0.97"); wrong predictions get a red
    bold title and a red frame.

    One axes holds every tile (placed by `extent`): far faster to draw than one axes per image.
    """
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    names = [str(c) for c in class_names]
    suffixes = list(suffixes) if suffixes is not None else [""] * n
    longest = max((len(names[t]) + len(names[p]) + 1 + len(e) for t, p, e in zip(targets, predictions, suffixes)),
                  default=3)
    two_lines = longest > 22
    label_h = 0.42 if two_lines else 0.24  # room above each tile for its title, in tile heights
    gap = 0.12
    cell_w, cell_h = 1 + gap, 1 + gap + label_h
    fig = new_figure(ncols * cell_w * 1.2, nrows * cell_h * 1.2 + 0.45, layout=None)
    ax = fig.add_axes((0.005, 0.005, 0.99, 1 - 0.5 / fig.get_figheight()))
    ax.set_xlim(-gap / 2, ncols * cell_w - gap / 2)
    ax.set_ylim(nrows * cell_h, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    wrong = 0
    for k in range(n):
        row, col = divmod(k, ncols)
        x0, y0 = col * cell_w, row * cell_h + label_h
        t, p = int(targets[k]), int(predictions[k])
        ok = t == p
        wrong += not ok
        image = images[k]
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest",
                  extent=(x0, x0 + 1, y0 + 1, y0))
        label = f"{names[t]}:{names[p]}{suffixes[k]}" if not two_lines else f"{names[t]}:\n{names[p]}{suffixes[k]}"
        ax.text(x0 + 0.5, y0 - 0.04, label, ha="center", va="bottom", fontsize=10 if longest <= 12 else 8,
                color=RIGHT if ok else WRONG, fontweight="normal" if ok else "bold")
        if not ok:
            ax.add_patch(Rectangle((x0, y0), 1, 1, fill=False, edgecolor=WRONG, linewidth=3))
    fig.suptitle(title or f"first {n} test images, true:predicted ({wrong} wrong, in red)", fontsize=12,
                 y=1 - 0.1 / fig.get_figheight(), va="top")
    return fig


# --- learning curves ------------------------------------------------------------------------------
def learning_curves_figure(history: Mapping[str, Sequence[tuple[float, float]]], x_label: str, title: str) -> Figure:
    """Loss and accuracy panels, train and validation in one chart each.

    `history` maps a metric (`train/loss`, `val/loss`, `train/acc`, `val/acc`) to (x, value) points.
    """
    fig = new_figure(12, 4.6)
    axes = fig.subplots(1, 2)
    styles = {"train": {"color": "#1f77b4", "marker": "o"}, "val": {"color": "#ff7f0e", "marker": "s"}}
    for ax, metric, name in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        for split, label in (("train", "train"), ("val", "validation")):
            points = history.get(f"{split}/{metric}") or []
            if not points:
                continue
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=label, linewidth=1.8, markersize=3 if len(xs) <= 60 else 0, **styles[split])
        ax.set_title(name, fontsize=12)
        ax.set_xlabel(x_label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title, fontsize=13)
    return fig

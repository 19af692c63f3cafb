"""Small drawing helpers shared by the topics: an image panel and a matrix-with-numbers panel."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.patches import Rectangle


def image_panel(ax, image: torch.Tensor | np.ndarray, title: str, vmin: float | None = None,
                vmax: float | None = None, cmap: str = "gray") -> None:
    """A 2-D map shown pixel by pixel (no smoothing), with its size in the title and no ticks."""
    values = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, dtype=float)
    ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(f"{title}\n{values.shape[0]}x{values.shape[1]}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def matrix_panel(ax, matrix: torch.Tensor | np.ndarray, title: str, cmap: str = "Blues", fmt: str = "{:g}",
                 highlight_border: bool = False, signed: bool = False,
                 limits: tuple[float, float] | None = None) -> None:
    """A small matrix drawn as a heat map with its value written in every cell; `signed`: a diverging
    map centred on 0 (red positive, blue negative), as for kernels with negative weights; `limits`:
    the (low, high) of the colour scale, to compare panels."""
    values = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix, dtype=float)
    if signed:
        top = float(np.abs(values).max()) or 1.0
        cmap, low, high = "RdBu_r", -top, top
    elif limits is not None:
        low, high = limits
    else:
        low, high = min(float(values.min()), 0.0), float(values.max())
        high = high if high > low else low + 1
    ax.imshow(values, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
    rows, cols = values.shape
    font = 12 if max(rows, cols) <= 5 else 9
    for i in range(rows):
        for j in range(cols):
            position = (values[i, j] - low) / (high - low)
            strong = position > 0.8 or (signed and position < 0.2)
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=font,
                    color="white" if strong else "black")
    if highlight_border:
        ax.add_patch(Rectangle((0.5, 0.5), cols - 2, rows - 2, fill=False, edgecolor="#d62728", linewidth=2.5))
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.tick_params(length=0, labelsize=8)
    ax.set_title(title, fontsize=10)

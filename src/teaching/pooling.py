"""Notes 4's pooling: max, average (mean), min and overlapped pooling on a real image and on a small
matrix with its numbers; and "resize vs max-pool": halving an image by resizing vs 2x2 max-pooling.

    python -m src.visualize pooling                     # a digit; data=fashion_mnist for a 28x28 image
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src.figures.plots import new_figure
from src.teaching.conv_arithmetic import as_image, pool2d
from src.teaching.data import sample_image
from src.teaching.draw import image_panel, matrix_panel

# (title, kind, kernel, stride): stride < kernel is overlapped pooling.
POOLINGS = (
    ("max 2x2, stride 2", "max", 2, 2),
    ("average 2x2, stride 2", "avg", 2, 2),
    ("min 2x2, stride 2", "min", 2, 2),
    ("overlapped max 3x3, stride 2", "max", 3, 2),
)

# A 5x5 matrix to pool by hand: 2x2 windows with stride 2 leave the last row and column out
# (floor((5 - 2) / 2) + 1 = 2); 3x3 windows with stride 2 overlap on the middle row and column.
EXAMPLE = as_image([[1, 3, 2, 9, 4], [7, 4, 1, 5, 2], [8, 6, 3, 4, 6], [2, 1, 7, 0, 3], [5, 2, 4, 8, 1]])


def resize_half(image: torch.Tensor, mode: str) -> torch.Tensor:
    """The image resized to half its height and width (`nearest` keeps every other pixel; `bilinear`
    at exactly 1/2 averages each 2x2 block, the same as average pooling)."""
    x = as_image(image)[None, None]
    out = F.interpolate(x, scale_factor=0.5, mode=mode, align_corners=False if mode == "bilinear" else None)
    return out[0, 0]


def poolings_figure(image: torch.Tensor, caption: str):
    fig = new_figure(3.2 * (len(POOLINGS) + 1), 3.9)
    axes = fig.subplots(1, len(POOLINGS) + 1)
    image_panel(axes[0], image, "input", 0, 1)
    for ax, (title, kind, kernel, stride) in zip(axes[1:], POOLINGS):
        image_panel(ax, pool2d(image, kind, kernel, stride), title, 0, 1)
    fig.suptitle(f"Notes 4's pooling on {caption}: output side floor((I - K) / S) + 1", fontsize=12)
    return fig


def example_figure():
    fig = new_figure(16, 4.2)
    axes = fig.subplots(1, len(POOLINGS) + 1, width_ratios=[5, 2, 2, 2, 2])
    limits = (0.0, float(EXAMPLE.max()))
    matrix_panel(axes[0], EXAMPLE, "5x5 input", limits=limits)
    for ax, (title, kind, kernel, stride) in zip(axes[1:], POOLINGS):
        matrix_panel(ax, pool2d(EXAMPLE, kind, kernel, stride), title, fmt="{:g}", limits=limits)
    fig.suptitle("Pooling by hand: each output cell is the max / mean / min of one window; 2x2 windows with stride 2 "
                 "leave\nthe last row and column out (floor((5 - 2) / 2) + 1 = 2), 3x3 windows with stride 2 overlap "
                 "on the middle ones", fontsize=12)
    return fig


def resize_figure(image: torch.Tensor, caption: str):
    fig = new_figure(13, 3.9)
    axes = fig.subplots(1, 4)
    image_panel(axes[0], image, "input", 0, 1)
    image_panel(axes[1], resize_half(image, "nearest"), "resize 1/2 (nearest)", 0, 1)
    image_panel(axes[2], resize_half(image, "bilinear"), "resize 1/2 (bilinear)", 0, 1)
    image_panel(axes[3], pool2d(image, "max", 2), "2x2 max pooling", 0, 1)
    fig.suptitle(f"Resize vs max pooling on {caption}\nresizing drops (nearest) or averages (bilinear) pixels; "
                 "max pooling keeps the strongest value of each 2x2 block", fontsize=12)
    return fig


def render(cfg, output) -> None:
    sample = sample_image(cfg.data, int(cfg.index))
    image = sample.pixels.double()
    output.figure("pooling", poolings_figure(image, sample.caption))
    output.figure("pooling_example", example_figure())
    output.figure("resize_vs_maxpool", resize_figure(image, sample.caption))

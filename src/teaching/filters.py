"""Notes 4's classic image filters applied with `F.conv2d` to a real image, notes 4's 5x5 worked
example, and notes 0's diagonal kernel applied three times.

    python -m src.visualize filters                     # a digit (8x8: 8 -> 6 -> 4 -> 2)
    python -m src.visualize filters data=fashion_mnist  # a 28x28 image (28 -> 26 -> 24 -> 22)

Filtering follows notes 4: the kernel is applied where it fits and the border pixels, which cannot
be computed, are 0 (`filter_with_zero_border`), so every filtered image keeps the input's size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from matplotlib.patches import Rectangle

from src.figures.plots import new_figure
from src.teaching.conv_arithmetic import as_image, filter_with_zero_border, repeated_convolution
from src.teaching.data import sample_image
from src.teaching.draw import image_panel, matrix_panel

# Notes 4's kernels (its slides, "이미지 필터 적용 예").
KERNELS: dict[str, torch.Tensor] = {
    "identity": as_image([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
    "sharpen": as_image([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "box blur": as_image([[1, 1, 1], [1, 1, 1], [1, 1, 1]]) / 9,
    "Gaussian blur": as_image([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
}
KERNEL_NOTES = {"box blur": " (ones / 9)", "Gaussian blur": " ([1 2 1]ᵀ[1 2 1] / 16)"}


def root_sum_square(h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """sqrt(H^2 + V^2): the gradient magnitude (notes 4's difference and Roberts filters)."""
    return torch.sqrt(h**2 + v**2)


def mean_absolute(h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(|H| + |V|) / 2 (notes 4's Sobel and Prewitt filters)."""
    return (h.abs() + v.abs()) / 2


# Edge detectors: a horizontal-difference kernel H, a vertical one V, and how the notes combine them.
EDGE_FILTERS: dict[str, tuple[torch.Tensor, torch.Tensor, Callable, str]] = {
    "difference": (as_image([[0, 0, 0], [0, 1, -1], [0, 0, 0]]), as_image([[0, 0, 0], [0, 1, 0], [0, -1, 0]]),
                   root_sum_square, "sqrt(H² + V²)"),
    "Roberts": (as_image([[0, 0, 0], [0, 1, 0], [0, 0, -1]]), as_image([[0, 0, 0], [0, 0, 1], [0, -1, 0]]),
                root_sum_square, "sqrt(H² + V²)"),
    "Sobel": (as_image([[1, 0, -1], [2, 0, -2], [1, 0, -1]]), as_image([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),
              mean_absolute, "(|H| + |V|) / 2"),
    "Prewitt": (as_image([[1, 0, -1], [1, 0, -1], [1, 0, -1]]), as_image([[1, 1, 1], [0, 0, 0], [-1, -1, -1]]),
                mean_absolute, "(|H| + |V|) / 2"),
}

# Notes 0's kernel with weights on the anti-diagonal only (nn.Conv2d(1, 1, 3), bias 0).
DIAGONAL_KERNEL = as_image([[0, 0, 1], [0, 1, 0], [1, 0, 0]])

# Notes 4's worked example: a 5x5 image, a 3x3 kernel, output [[4, 8, 4], [5, 5, 6], [8, 5, 9]] inside a zero border.
NOTES4_IMAGE = as_image([[1, 3, 3, 0, 0], [0, 3, 1, 0, 0], [0, 0, 2, 1, 1], [0, 0, 3, 0, 1], [3, 2, 1, 3, 0]])
NOTES4_KERNEL = as_image([[0, 1, 0], [1, 0, 1], [1, 1, 0]])


def edge_responses(image: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(H response, V response, the notes' combination) of edge filter `name` on a 2-D image."""
    h_kernel, v_kernel, combine, _ = EDGE_FILTERS[name]
    h, v = filter_with_zero_border(image, h_kernel), filter_with_zero_border(image, v_kernel)
    return h, v, combine(h, v)


# --- figures ------------------------------------------------------------------------------------
def kernels_figure(image: torch.Tensor, caption: str):
    fig = new_figure(3.0 * (len(KERNELS) + 1), 6.4)
    axes = fig.subplots(2, len(KERNELS) + 1, height_ratios=[1, 2])
    axes[0, 0].axis("off")
    axes[0, 0].text(0.5, 0.5, "kernel\n(3x3)", ha="center", va="center", fontsize=12)
    image_panel(axes[1, 0], image, "input", 0, 1)
    for col, (name, kernel) in enumerate(KERNELS.items(), start=1):
        fmt = "{:g}" if name in ("identity", "sharpen") else "{:.3f}"
        matrix_panel(axes[0, col], kernel, name + KERNEL_NOTES.get(name, ""), fmt=fmt, signed=True)
        image_panel(axes[1, col], filter_with_zero_border(image, kernel), name, 0, 1)
    fig.suptitle(f"Notes 4's filters on {caption}: F.conv2d where the kernel fits, border pixels 0; "
                 "images on a 0..1 scale", fontsize=12)
    return fig


def edges_figure(image: torch.Tensor, caption: str):
    fig = new_figure(15, 3.0 * len(EDGE_FILTERS) + 0.6)
    axes = fig.subplots(len(EDGE_FILTERS), 5)
    for row, (name, (h_kernel, v_kernel, _, formula)) in enumerate(EDGE_FILTERS.items()):
        h, v, combined = edge_responses(image, name)
        matrix_panel(axes[row, 0], h_kernel, f"{name}: H kernel", signed=True)
        matrix_panel(axes[row, 1], v_kernel, f"{name}: V kernel", signed=True)
        limit = float(max(h.abs().max(), v.abs().max(), 1e-6))
        image_panel(axes[row, 2], h, "H response", -limit, limit, cmap="RdBu_r")
        image_panel(axes[row, 3], v, "V response", -limit, limit, cmap="RdBu_r")
        image_panel(axes[row, 4], combined, f"edges = {formula}", 0, None, cmap="gray")
    fig.suptitle(f"Notes 4's edge filters on {caption}; kernels and responses: red positive, blue negative",
                 fontsize=12)
    return fig


def notes4_example_figure():
    output = filter_with_zero_border(NOTES4_IMAGE, NOTES4_KERNEL)
    fig = new_figure(12, 4.2)
    axes = fig.subplots(1, 3, width_ratios=[5, 3, 5])

    matrix_panel(axes[0], NOTES4_IMAGE, "5x5 input (dashed: the window of img[1,1])")
    axes[0].add_patch(Rectangle((-0.45, -0.45), 2.9, 2.9, fill=False, edgecolor="#ff7f0e", linewidth=2.5,
                                linestyle="--"))
    matrix_panel(axes[1], NOTES4_KERNEL, "3x3 kernel", cmap="Oranges")
    matrix_panel(axes[2], output, "output: computed where the kernel fits (red box);\nthe border cannot be "
                 "computed and is 0", cmap="Greens", highlight_border=True)
    fig.suptitle("Notes 4's filtering example: img[1,1] = 1x0 + 3x1 + 3x0 + 0x1 + 3x0 + 1x1 + 0x1 + 0x1 + 2x0 = 4",
                 fontsize=12)
    return fig


def diagonal_figure(image: torch.Tensor, caption: str):
    maps = repeated_convolution(image, DIAGONAL_KERNEL, times=3)
    fig = new_figure(13, 3.8)
    axes = fig.subplots(1, 5, width_ratios=[0.8, 1, 1, 1, 1])
    matrix_panel(axes[0], DIAGONAL_KERNEL, "the kernel", cmap="Oranges")
    for k, (ax, fmap) in enumerate(zip(axes[1:], maps)):
        image_panel(ax, fmap, "input" if k == 0 else f"after {k} convolution{'s' if k > 1 else ''}", cmap="gray_r")
    sides = " -> ".join(str(m.shape[0]) for m in maps)
    fig.suptitle(f"Notes 0: a diagonal 3x3 kernel applied three times to {caption}\n"
                 f"{sides} pixels: each 3x3 convolution without padding loses 2", fontsize=12)
    return fig


def render(cfg, output) -> None:
    sample = sample_image(cfg.data, int(cfg.index))
    image = sample.pixels.double()
    output.figure("filters", kernels_figure(image, sample.caption))
    output.figure("edge_filters", edges_figure(image, sample.caption))
    output.figure("diagonal_kernel", diagonal_figure(image, sample.caption))
    output.figure("notes4_example", notes4_example_figure())

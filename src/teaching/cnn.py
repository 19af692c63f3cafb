"""A trained CNN from the inside: its first-layer filters and the feature maps each convolution layer
computes for one test image (notes 0's "feature extraction, then classification").

    python -m src.train model=notes0_cnn data=digits trainer.max_epochs=5
    python -m src.visualize cnn ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt index=3
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from src.errors import require
from src.figures.plots import new_figure
from src.teaching.data import max_pixel_value
from src.teaching.trained import load_trained

MAX_LAYERS = 6  # convolution layers shown (the first ones; deep nets have dozens)
MAX_MAPS = 8  # feature maps shown per layer
MAX_FILTERS = 64  # first-layer filters shown


def conv_layers(net: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The net's 2-D convolutions in forward-definition order, with their names."""
    return [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]


@torch.no_grad()
def feature_maps(net: nn.Module, x: torch.Tensor, max_layers: int = MAX_LAYERS) -> list[tuple[str, torch.Tensor]]:
    """[(layer name, its output (C, H, W))] for the first `max_layers` convolutions on one input
    (1, C, H, W); the outputs are copied before any in-place activation changes them."""
    captured: list[tuple[str, torch.Tensor]] = []
    hooks = [
        layer.register_forward_hook(lambda _m, _i, out, name=name: captured.append((name, out[0].detach().clone())))
        for name, layer in conv_layers(net)[:max_layers]
    ]
    try:
        net.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def filter_images(weight: torch.Tensor) -> np.ndarray:
    """First-layer weights (out, in, k, k) as displayable images: RGB for 3 input channels, else the
    mean over input channels; each filter stretched to its own min..max."""
    w = weight.detach().float().cpu()
    w = w.permute(0, 2, 3, 1) if w.shape[1] == 3 else w.mean(1, keepdim=True).permute(0, 2, 3, 1)
    low = w.amin(dim=(1, 2, 3), keepdim=True)
    high = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - low) / (high - low).clamp(min=1e-12)
    return (w if w.shape[-1] == 3 else w[..., 0]).numpy()


def filters_figure(layer_name: str, weight: torch.Tensor, title: str):
    images = filter_images(weight)[:MAX_FILTERS]
    n = len(images)
    cols = min(8, n)
    rows = math.ceil(n / cols)
    fig = new_figure(1.5 * cols + 0.4, 1.6 * rows + 1.0)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for k, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.axis("off")
            continue
        ax.imshow(images[k], cmap="gray" if images[k].ndim == 2 else None, interpolation="nearest")
        ax.set_title(f"filter {k}", fontsize=8)
    out_c, in_c, kh, kw = weight.shape
    how = "RGB" if in_c == 3 else ("grey" if in_c == 1 else f"mean of {in_c} input channels")
    fig.suptitle(f"{title}\nfirst convolution `{layer_name}`: {out_c} filters of {kh}x{kw} ({how}, each "
                 "stretched to its own range)", fontsize=11)
    return fig


def maps_figure(image: np.ndarray, maps: list[tuple[str, torch.Tensor]], title: str):
    cols = MAX_MAPS + 1
    fig = new_figure(1.45 * cols + 0.4, 1.7 * len(maps) + 1.2)
    axes = np.atleast_2d(fig.subplots(len(maps), cols))
    for row, (name, fmap) in enumerate(maps):
        for col in range(cols):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
                ax.set_ylabel(f"{name}\n{fmap.shape[0]}x{fmap.shape[1]}x{fmap.shape[2]}", fontsize=8)
                if row == 0:
                    ax.set_title("input", fontsize=8)
                continue
            channel = col - 1
            if channel >= fmap.shape[0]:
                ax.axis("off")
                continue
            ax.imshow(fmap[channel].numpy(), cmap="viridis", interpolation="nearest")
            if row == 0:
                ax.set_title(f"channel {channel}", fontsize=8)
    fig.suptitle(f"{title}\nconvolution outputs (before the activation), first {MAX_MAPS} channels per layer; "
                 "rows: layer name, channels x height x width", fontsize=11)
    return fig


def render(cfg, output) -> None:
    require(bool(cfg.get("ckpt_path")), "the cnn topic needs ckpt_path=PATH, a CNN checkpoint written by src.train "
            "(e.g. python -m src.train model=notes0_cnn data=digits).")
    trained = load_trained(str(cfg.ckpt_path))
    net = trained.module.net
    layers = conv_layers(net)
    require(
        bool(layers),
        f"the model in {trained.source} is a {trained.net_name} with no convolution layer; the cnn topic needs a "
        "CNN checkpoint (e.g. model=notes0_cnn, notes1_mnist_cnn, lenet, resnet).",
    )
    test = trained.datamodule.test_split
    index = int(cfg.index)
    require(0 <= index < len(test), f"index={index} is outside the test split (0 to {len(test) - 1}); pass index=0.")
    raw = test.inputs[index : index + 1]
    x = trained.datamodule.transform(raw) if trained.datamodule.transform else raw.float()
    with torch.no_grad():
        predicted = int(trained.module.predict_proba(x).argmax(1))
    names = trained.datamodule.class_names
    true = names[int(test.targets[index])]
    shown = (raw[0].float() / max_pixel_value(trained.datamodule)).clamp(0, 1)
    shown = shown[0].numpy() if shown.shape[0] == 1 else shown[:3].permute(1, 2, 0).numpy()
    title = (f"{trained.net_name} ({trained.data_cfg.get('name')}), test image {index}: true {true}, "
             f"predicted {names[predicted]}")
    output.figure("cnn_filters", filters_figure(layers[0][0], layers[0][1].weight, f"{trained.net_name} "
                                                f"({trained.data_cfg.get('name')})"))
    output.figure("cnn_feature_maps", maps_figure(shown, feature_maps(net, x), title))

"""Where a CNN looks: class activation maps from captum.

- Grad-CAM (`captum.attr.LayerGradCam`) on the net's last convolution: the layer's feature maps weighted
  by the class score's average gradient, ReLU'd, upsampled to the input. Coarse (one value per cell of
  the last feature map), class-discriminative.
- Integrated gradients (`captum.attr.IntegratedGradients`): per-pixel attributions of the class score,
  integrated along the path from a black image to the input; fine-grained, for any differentiable net.

Both are computed for a chosen class of each image (the predicted one, the true one); maps are
scaled to [0, 1] per image for display.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from torch import nn

from src.errors import require
from src.figures.plots import new_figure

IG_STEPS = 16


def last_conv(net: nn.Module, x: torch.Tensor, source: str) -> nn.Conv2d:
    """The last 2-D convolution a forward pass of `x` runs through: the layer Grad-CAM reads (a convolution
    of a branch the eval forward skips, such as GoogLeNet's auxiliary heads, does not count)."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    require(bool(convs), f"the model in {source} is a {type(net).__name__} with no convolution layer; class activation "
                         "maps need a CNN (e.g. model=lenet, resnet18, vgg11, notes0_cnn or a timm CNN).")
    fired: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda module, _i, _o: fired.append(module)) for m in convs]
    try:
        with torch.no_grad():
            net(x[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return fired[-1] if fired else convs[-1]


def _out_of_place(net: nn.Module) -> nn.Module:
    """A copy of `net` whose in-place activations (ReLU(inplace=True) & co) compute out of place: an in-place
    activation right after the last convolution would overwrite the output Grad-CAM differentiates."""
    clone = copy.deepcopy(net)
    for module in clone.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    return clone


def scaled(maps: torch.Tensor) -> np.ndarray:
    """(N, H, W) maps scaled to [0, 1] per image (an all-zero map stays zero)."""
    flat = maps.reshape(len(maps), -1)
    low = flat.min(1, keepdim=True).values
    high = flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).reshape(maps.shape).numpy()


def class_maps(net: nn.Module, x: torch.Tensor, classes: Sequence[int], source: str = "the model"
               ) -> dict[str, np.ndarray]:
    """{"grad_cam": (N, H, W), "integrated_gradients": (N, H, W)} for class `classes[i]` of input `x[i]`
    (preprocessed model inputs), each scaled to [0, 1]."""
    net = _out_of_place(net).eval()
    layer = last_conv(net, x, source)
    target = torch.as_tensor(list(classes), dtype=torch.long)
    with torch.enable_grad():
        cam = LayerGradCam(net, layer).attribute(x, target=target, relu_attributions=True)
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear").sum(1)
        ig = IntegratedGradients(net).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=IG_STEPS,
                                                internal_batch_size=max(1, len(x)) * 4)
    return {"grad_cam": scaled(cam.detach().float().cpu()),
            "integrated_gradients": scaled(ig.detach().abs().sum(1).float().cpu())}


def peak_cells(maps: np.ndarray, rows: int = 2, cols: int = 2) -> np.ndarray:
    """The cell of a rows x cols grid (row-major index) that holds each map's maximum."""
    n, height, width = maps.shape
    flat = maps.reshape(n, -1).argmax(1)
    y, x = np.divmod(flat, width)
    return (y * rows // height) * cols + (x * cols // width)


def cam_figure(images: np.ndarray, rows: list[dict], title: str):
    """One row per image: the image, then each (method, class) map over it. `images`: (N, H, W) or (N, H, W, 3)
    in [0, 1]; `rows[i]`: {"label": str, "maps": [(column title, (H, W) map)]}."""
    n, cols = len(images), 1 + max(len(r["maps"]) for r in rows)
    fig = new_figure(2.1 * cols, 2.2 * n + 0.4)
    axes = fig.subplots(n, cols, squeeze=False)
    for i, (image, row) in enumerate(zip(images, rows)):
        grey = image.ndim == 2
        axes[i, 0].imshow(image, cmap="gray" if grey else None, vmin=0, vmax=1)
        axes[i, 0].set_title(row["label"], fontsize=8)
        for j, (name, heat) in enumerate(row["maps"], start=1):
            axes[i, j].imshow(image, cmap="gray" if grey else None, vmin=0, vmax=1)
            axes[i, j].imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axes[i, j].set_title(name, fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return fig


def maps_for(net: nn.Module, x: torch.Tensor, predicted: Sequence[int], true: Sequence[int | None],
             class_names: Sequence[str], source: str) -> list[dict]:
    """The figure rows of `cam_figure`: Grad-CAM and integrated gradients for the predicted class, and for the
    true class where it is known and differs."""
    rows = [{"label": f"predicted {class_names[p]}" + (f", true {class_names[t]}" if t is not None else ""),
             "maps": []} for p, t in zip(predicted, true)]
    for which, classes in (("predicted", list(predicted)), ("true", [t if t is not None else p
                                                                     for p, t in zip(predicted, true)])):
        if which == "true" and all(t is None or t == p for p, t in zip(predicted, true)):
            continue
        found = class_maps(net, x, classes, source)
        for i, row in enumerate(rows):
            if which == "true" and (true[i] is None or true[i] == predicted[i]):
                continue
            name = class_names[classes[i]]
            row["maps"] += [(f"Grad-CAM: {name}", found["grad_cam"][i]),
                            (f"int. gradients: {name}", found["integrated_gradients"][i])]
    return rows

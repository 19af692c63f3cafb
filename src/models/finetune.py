"""Fine-tuning a pretrained net: which parameters are the classifier head and which the backbone, and the
optimizer's parameter groups with a smaller learning rate for the backbone. Loaded only when a run uses them:

    callbacks.freeze_backbone.epochs=N   the backbone is frozen (and its BatchNorm layers keep their
                                         pretrained statistics) for the first N epochs: only the new
                                         head trains (src/callbacks/finetune.py)
    optimizer.backbone_lr_scale=s        the backbone trains with s x optimizer.lr, the head with optimizer.lr

The head is what timm's `pretrained_cfg["classifier"]` names (timm models), else the net's last
`nn.Linear` (e.g. the ResNets' `fc`, LeNet's last layer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from src.errors import require
from src.models.nets.timm_net import head_names


def check_backbone_lr_scale(optimizer: Mapping[str, Any], scheduler: Mapping[str, Any] | None) -> None:
    """`optimizer.backbone_lr_scale`: a positive number, and not with OneCycleLR (one max_lr for every group)."""
    scale = optimizer.get("backbone_lr_scale", 1.0)
    require(isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0,
            f"optimizer.backbone_lr_scale must be a positive number (e.g. 0.1; 1 = the same lr), got {scale!r}.")
    require(not str((scheduler or {}).get("_target_", "")).endswith("OneCycleLR"),
            "optimizer.backbone_lr_scale cannot be combined with scheduler=onecycle (OneCycleLR gives every "
            "parameter group the same max_lr); use e.g. scheduler=cosine.")


def head_module_names(net: nn.Module) -> list[str]:
    """Module names of the net's classifier head (see the module docstring)."""
    if getattr(net, "pretrained_cfg", None):
        names = head_names(net)
        if names:
            return names
    linears = [name for name, module in net.named_modules() if isinstance(module, nn.Linear)]
    require(bool(linears), f"{type(net).__name__} has no nn.Linear classifier head, so fine-tuning cannot tell "
                           "its backbone from its head; drop callbacks.freeze_backbone and optimizer.backbone_lr_scale "
                           "for this model.")
    return linears[-1:]


def split_parameters(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone parameters, head parameters) of a net."""
    heads = head_module_names(net)
    modules = dict(net.named_modules())
    head_ids = {id(p) for name in heads for p in modules[name].parameters()}
    params = list(net.parameters())
    return [p for p in params if id(p) not in head_ids], [p for p in params if id(p) in head_ids]


def backbone_modules(net: nn.Module) -> list[nn.Module]:
    """The net's modules outside the classifier head (those a frozen backbone keeps in eval mode)."""
    heads = head_module_names(net)
    inside = lambda name: any(name == h or name.startswith(h + ".") for h in heads)  # noqa: E731
    return [module for name, module in net.named_modules() if name and not inside(name)]


def scale_backbone_lr(groups: Iterable[Any], net: nn.Module, lr: float, scale: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups (as `torch.optim` takes them: parameters or dicts of them) split into
    backbone and head parts; backbone parts get `lr = scale * lr`. Parameters outside the net (none
    in this project's modules) stay with the head."""
    groups = list(groups)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    backbone, _ = split_parameters(net)
    backbone_ids = {id(p) for p in backbone}
    out: list[dict[str, Any]] = []
    for group in groups:
        params = list(group["params"])
        rest = {k: v for k, v in group.items() if k != "params"}
        back = [p for p in params if id(p) in backbone_ids]
        head = [p for p in params if id(p) not in backbone_ids]
        if back:
            out.append({**rest, "params": back, "lr": rest.get("lr", lr) * scale})
        if head:
            out.append({**rest, "params": head})
    return out

"""Training recipes of `ClassificationModule`, each off by default (see docs/recipes.md).

- `BatchMixer`: mixup / cutmix of a training batch (torchvision's `transforms.v2.MixUp` / `CutMix`),
  which turns class-index targets into soft targets (N, C).
- `flip_tta_log_probs`: test-time augmentation, the average softmax of x and its mirror image.
- `optimizer_parameters`: parameter groups that keep weight decay off biases and normalisation layers.
- `check_arguments`: the module's arguments (recipe values among them) checked before anything is built.
- `build_scheduler`: the configured lr schedule, optionally after a linear warmup
  (`SequentialLR(LinearLR, schedule)`), in optimizer steps or epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from torch import nn
from torchvision.transforms import v2

from src.config.names import SCHEDULER_OWN_KEYS
from src.errors import UserError, require

RECIPE_KEYS = ("label_smoothing", "mixup_alpha", "cutmix_alpha", "tta_flip")  # ClassificationModule's arguments


def check_arguments(hparams: Mapping[str, Any]) -> None:
    """Refuse, in one sentence and before anything is built, a `ClassificationModule` argument out of
    range: the learning rate, L1, steps per call, a recipe value, or a recipe that needs images on other
    inputs, and a warmup the schedule cannot take."""
    lr, l1, k = hparams["optimizer"].get("lr"), hparams.get("l1", 0.0), hparams.get("steps_per_call", 1)
    require(isinstance(lr, (int, float)) and lr > 0,
            f"optimizer.lr must be a positive number, got {lr!r}; try e.g. optimizer.lr=0.01.")
    require(l1 >= 0, f"model.l1 must be >= 0, got {l1}.")
    require(isinstance(k, int) and not isinstance(k, bool) and k > 0,
            f"steps_per_call must be a positive integer, got {k!r}.")
    smoothing = hparams.get("label_smoothing", 0.0)
    require(
        isinstance(smoothing, (int, float)) and 0 <= smoothing < 1,
        f"model.label_smoothing must be in [0, 1) (e.g. 0.1; 0 = off), got {smoothing!r}.",
    )
    for key in ("mixup_alpha", "cutmix_alpha"):
        value = hparams.get(key, 0.0)
        require(
            isinstance(value, (int, float)) and value >= 0,
            f"model.{key} must be >= 0 (e.g. 0.2 for mixup, 1.0 for cutmix; 0 = off), got {value!r}.",
        )
    shape = hparams["net"].get("input_shape")
    for key in ("mixup_alpha", "cutmix_alpha", "tta_flip"):
        require(
            not hparams.get(key) or shape is None or len(shape) == 3,
            f"model.{key} works on images (C, H, W), but this data set's inputs have shape {list(shape or [])}; "
            f"drop model.{key} for it.",
        )
    check_scheduler(hparams.get("scheduler"))


# --- mixup / cutmix ------------------------------------------------------------------------------
class BatchMixer:
    """(images, class indices) -> (mixed images, soft targets (N, C) whose rows sum to 1).

    mixup blends each image with the next one of the batch, weight lam ~ Beta(alpha, alpha); cutmix
    pastes a random rectangle of the next image, lam = the area kept. The targets are the same
    blend of the two one-hot labels. With both on, each batch gets one of the two at random (p 0.5).
    Random draws come from the global CPU generator (seeded by `seed_everything`); the batch itself
    stays on its device and no value is read back to the host.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0) -> None:
        choices = []
        if mixup_alpha > 0:
            choices.append(v2.MixUp(alpha=float(mixup_alpha), num_classes=num_classes))
        if cutmix_alpha > 0:
            choices.append(v2.CutMix(alpha=float(cutmix_alpha), num_classes=num_classes))
        if not choices:
            raise ValueError("BatchMixer needs mixup_alpha > 0 or cutmix_alpha > 0")
        self.transform = choices[0] if len(choices) == 1 else v2.RandomChoice(choices)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4:
            raise UserError(
                f"model.mixup_alpha / model.cutmix_alpha need image batches (N, C, H, W), got inputs of shape "
                f"{list(x.shape)}; set them to 0 for this data set."
            )
        return self.transform(x, y)

    def __repr__(self) -> str:
        return f"BatchMixer({self.transform})"


# --- test-time augmentation ----------------------------------------------------------------------
def flip_tta_log_probs(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """log((softmax(net(x)) + softmax(net(flip(x)))) / 2), flip = mirror left-right.

    Log-probabilities are valid logits (their softmax is the averaged distribution), so the losses,
    metrics and `predict_proba` take them unchanged.
    """
    if x.ndim != 4:
        raise UserError(
            f"model.tta_flip needs image batches (N, C, H, W), got inputs of shape {list(x.shape)}; "
            "set model.tta_flip=false for this data set."
        )
    a = F.log_softmax(net(x).float(), dim=1)
    b = F.log_softmax(net(x.flip(-1)).float(), dim=1)
    return torch.logaddexp(a, b) - math.log(2.0)


# --- weight decay --------------------------------------------------------------------------------
def optimizer_parameters(module: nn.Module, decay_bias_and_norm: bool = True) -> Iterable[Any]:
    """All parameters (decay on everything, PyTorch's default), or two groups: weights of two or
    more dimensions with the optimizer's weight decay, and one-dimensional parameters (biases,
    batch/layer-norm scales and shifts) with weight_decay 0."""
    if decay_bias_and_norm:
        return module.parameters()
    decay = [p for p in module.parameters() if p.ndim > 1]
    no_decay = [p for p in module.parameters() if p.ndim <= 1]
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


# --- learning-rate schedule ----------------------------------------------------------------------
def _target_class(cfg: dict[str, Any]) -> type | None:
    if "_target_" not in cfg:
        return None
    return get_class(cfg["_target_"])


def warmup_length(cfg: dict[str, Any] | None) -> tuple[int, str | None]:
    """(warmup length, its unit "step" or "epoch"); (0, None) without warmup."""
    cfg = cfg or {}
    steps, epochs = cfg.get("warmup_steps") or 0, cfg.get("warmup_epochs") or 0
    return (int(steps), "step") if steps else (int(epochs), "epoch") if epochs else (0, None)


def scheduler_interval(cfg: dict[str, Any] | None) -> str | None:
    """How often the run's lr scheduler steps ("step" or "epoch"), or None when there is none.
    `scheduler=none` with a warmup is a warmup-only schedule in the warmup's own unit."""
    cfg = cfg or {}
    if "_target_" in cfg:
        return cfg.get("interval", "epoch")
    return warmup_length(cfg)[1]


def check_scheduler(cfg: dict[str, Any] | None) -> None:
    """Refuse, in one sentence, a warmup the schedule cannot take (before any data is loaded)."""
    cfg = cfg or {}
    for key in ("warmup_steps", "warmup_epochs"):
        value = cfg.get(key) or 0
        require(
            isinstance(value, int) and value >= 0,
            f"scheduler.{key} must be a non-negative integer (0 = no warmup), got {value!r}.",
        )
    require(
        not (cfg.get("warmup_steps") and cfg.get("warmup_epochs")),
        "set scheduler.warmup_steps or scheduler.warmup_epochs, not both.",
    )
    length, unit = warmup_length(cfg)
    interval = cfg.get("interval", "epoch")
    require(
        "_target_" not in cfg or interval in ("step", "epoch"),
        f"scheduler.interval must be 'step' or 'epoch', got {interval!r}.",
    )
    start = cfg.get("warmup_start_factor")
    require(
        start is None or (isinstance(start, (int, float)) and 0 < start <= 1),
        f"scheduler.warmup_start_factor must be in (0, 1] (or null for 1 / (warmup + 1)), got {start!r}.",
    )
    if not length or "_target_" not in cfg:
        return
    cls = _target_class(cfg)
    name = cls.__name__ if cls else cfg["_target_"]
    require(
        not (cls and issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau)),
        f"a warmup cannot precede {name} (PyTorch's SequentialLR does not support it); "
        "drop the warmup or choose scheduler=cosine or scheduler=step.",
    )
    require(
        not (cls and issubclass(cls, torch.optim.lr_scheduler.OneCycleLR)),
        "scheduler=onecycle already warms up (scheduler.pct_start); drop the extra warmup.",
    )
    words = {"step": "optimizer step", "epoch": "epoch"}
    require(
        unit == interval,
        f"scheduler.warmup_{unit}s counts {words[unit]}s, but this schedule ({name}) is stepped once per "
        f"{words[interval]} (scheduler.interval={interval}); use scheduler.warmup_{interval}s instead.",
    )


def build_scheduler(cfg: dict[str, Any] | None, optimizer: torch.optim.Optimizer,
                    total_steps: Callable[[], int] | None = None) -> dict[str, Any] | None:
    """Lightning's lr-scheduler config {"scheduler", "interval", "monitor"}, or None for a constant lr.

    With `warmup_steps` / `warmup_epochs` = W, the lr rises linearly over the first W steps/epochs,
    lr_t = lr * (t + 1) / (W + 1) (`warmup_start_factor` sets the first factor instead), then the
    configured schedule starts as if the run began there (`SequentialLR`); a cosine's `T_max`
    counts the whole run, so it is shortened by W and still ends at `eta_min`. `total_steps`
    (optimizer steps of the whole run) fills a `total_steps: null` (OneCycleLR).
    """
    check_scheduler(cfg)
    cfg = dict(cfg or {})
    interval = scheduler_interval(cfg)
    if interval is None:
        return None
    monitor = cfg.get("monitor", "val/loss")
    length, _ = warmup_length(cfg)
    start_factor = cfg.get("warmup_start_factor") or 1.0 / (length + 1)
    for key in SCHEDULER_OWN_KEYS:
        cfg.pop(key, None)
    main = None
    if "_target_" in cfg:
        if "total_steps" in cfg and cfg["total_steps"] is None:
            require(total_steps is not None, "scheduler.total_steps=null needs a trainer to count the steps.")
            cfg["total_steps"] = int(total_steps()) - length
        cls = _target_class(cfg)
        if length and issubclass(cls, torch.optim.lr_scheduler.CosineAnnealingLR) and "T_max" in cfg:
            cfg["T_max"] = max(int(cfg["T_max"]) - length, 1)
        main = instantiate(cfg)(optimizer=optimizer)
    if length:
        ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=start_factor, end_factor=1.0,
                                                 total_iters=length)
        scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, main], [length]) if main else ramp
    else:
        scheduler = main
    return {"scheduler": scheduler, "interval": interval, "monitor": monitor}

"""Learning-rate schedules of `ClassificationModule`: the configured `scheduler` (a `torch.optim.lr_scheduler`
class), optionally after a linear warmup (`SequentialLR(LinearLR, schedule)`), stepped per optimizer step or
per epoch (`scheduler.interval`). Loaded only when a run has a schedule or a warmup (scheduler=none is neither).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import get_class, instantiate

from src.config.names import SCHEDULER_OWN_KEYS
from src.errors import require


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

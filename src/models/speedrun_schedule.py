"""The speed run's arithmetic (Jordan 2024, arXiv 2404.00498), used by `SpeedrunModule`: its decoupled
SGD hyper-parameters, its lr schedule, its test-time augmentation, and the epoch its augmentation learns."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def decoupled_sgd(lr: float, weight_decay: float, momentum: float, batch_size: int,
                  reference: int = 1024) -> tuple[float, float]:
    """(PyTorch lr for a batch-mean loss, weight decay per step) from the paper's decoupled values,
    given per `reference` examples: with s = reference (1 + 1 / (1 - momentum)), lr * B / s and
    weight_decay * B / s."""
    scale = reference * (1.0 + 1.0 / (1.0 - momentum))
    return lr * batch_size / scale, weight_decay * batch_size / scale


def speedrun_lr_factor(step: int, total: int, warmup_fraction: float = 0.23, start: float = 0.2,
                       end: float = 0.07) -> float:
    """The lr multiplier at optimizer step `step` of `total`: linear start -> 1 over the first
    int(warmup_fraction * total) steps, then linear 1 -> end at `total`."""
    warmup = int(warmup_fraction * total)
    if step < warmup:
        frac = step / warmup
        return start * (1.0 - frac) + frac
    frac = min((step - warmup) / max(total - warmup, 1), 1.0)
    return (1.0 - frac) + end * frac


def tta_logits(net: Any, x: torch.Tensor, level: int) -> torch.Tensor:
    """Logits averaged over test-time views (float32): 0 = x; 1 = x and its mirror; 2 = half of
    that plus a quarter of each mirrored pair translated by one pixel up-left / down-right."""
    if level <= 0 or x.ndim != 4:
        return net(x).float()

    def mirrored(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (net(v).float() + net(v.flip(-1)).float())

    logits = mirrored(x)
    if level >= 2:
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = mirrored(padded[..., :h, :w]) + mirrored(padded[..., 2:, 2:])
        logits = 0.5 * logits + 0.25 * shifted
    return logits


def set_augmentation_epoch(transform: object, epoch: int) -> int:
    """Tell every epoch-aware step (one with `set_epoch`, e.g. `AlternatingFlip`) of a (possibly composed) batch
    transform the training epoch; returns how many steps took it."""
    steps = getattr(transform, "transforms", None)
    told = 0
    for step in steps if isinstance(steps, list) else [transform]:
        if callable(getattr(step, "set_epoch", None)):
            step.set_epoch(epoch)
            told += 1
    return told

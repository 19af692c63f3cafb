"""Loss formulations. The three multi-class ones are the same loss written three ways (seed 000)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`nn.CrossEntropyLoss` on raw scores (the usual way)."""
    return F.cross_entropy(logits, target)


def log_softmax_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`nn.LogSoftmax` head followed by `nn.NLLLoss`."""
    return F.nll_loss(F.log_softmax(logits, dim=1), target)


def softmax_log_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`nn.Softmax` head, `torch.log`, then `nn.NLLLoss` (numerically the weakest of the three)."""
    return F.nll_loss(torch.log(F.softmax(logits, dim=1)), target)


def binary_cross_entropy(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sigmoid + `nn.BCELoss` on one output unit, computed stably from the logit."""
    return F.binary_cross_entropy_with_logits(logit.reshape(-1), target.to(logit.dtype).reshape(-1))


MULTICLASS_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": cross_entropy,
    "log_softmax_nll": log_softmax_nll,
    "softmax_log_nll": softmax_log_nll,
}

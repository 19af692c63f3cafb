"""Loss formulations. The three multi-class ones are the same loss written three ways (notes 0).

Each multi-class loss takes class-index targets (N,) or class-probability targets (N, C) (the soft
targets of mixup / cutmix), and `label_smoothing` as in `nn.CrossEntropyLoss`: the target
distribution becomes (1 - e) * target + e / C. The NLL formulations implement it with the same
formula, so all three stay equal.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """`nn.CrossEntropyLoss` on raw scores (the usual way)."""
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing)


def nll_from_log_probs(log_probs: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean of -sum_c q_c log p_c, q the (smoothed) target distribution: `nn.NLLLoss` for index targets
    without smoothing, and exactly `F.cross_entropy(..., label_smoothing)`'s formula otherwise."""
    if target.is_floating_point():  # probabilities (N, C)
        q = target.to(log_probs.dtype)
        if label_smoothing:
            q = q * (1.0 - label_smoothing) + label_smoothing / log_probs.shape[1]
        return -(q * log_probs).sum(1).mean()
    loss = F.nll_loss(log_probs, target)
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * log_probs.mean(1).mean()
    return loss


def log_softmax_nll(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """`nn.LogSoftmax` head followed by `nn.NLLLoss`."""
    return nll_from_log_probs(F.log_softmax(logits, dim=1), target, label_smoothing)


def softmax_log_nll(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """`nn.Softmax` head, `torch.log`, then `nn.NLLLoss` (numerically the weakest of the three)."""
    return nll_from_log_probs(torch.log(F.softmax(logits, dim=1)), target, label_smoothing)


MULTICLASS_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "cross_entropy": cross_entropy,
    "log_softmax_nll": log_softmax_nll,
    "softmax_log_nll": softmax_log_nll,
}  # model.loss=<name>; ClassificationModule computes cross_entropy itself and loads this file for the others

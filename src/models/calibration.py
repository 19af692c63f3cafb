"""How far predicted probabilities are from observed frequencies, and one temperature that brings them closer.

- `calibration_metrics`: expected calibration error (ECE: 15 equal-width confidence bins, torchmetrics'
  `MulticlassCalibrationError`), negative log-likelihood and the (multi-class) Brier score.
- `reliability_bins`: per bin, the mean confidence, the accuracy and the number of samples (the
  reliability diagram's bars).
- `fit_temperature`: the T minimising the NLL of `logits / T` on held-out data (LBFGS on log T, so T stays
  positive).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

NUM_BINS = 15


def calibration_metrics(probabilities: torch.Tensor, targets: torch.Tensor, num_bins: int = NUM_BINS
                        ) -> dict[str, float]:
    """{"ece", "nll", "brier"} of (N, C) class probabilities against (N,) integer targets."""
    probabilities, targets = probabilities.float().cpu(), targets.long().cpu()
    num_classes = probabilities.shape[1]
    ece = multiclass_calibration_error(probabilities, targets, num_classes=num_classes, n_bins=num_bins, norm="l1")
    nll = -probabilities.gather(1, targets.view(-1, 1)).clamp_min(1e-12).log().mean()
    brier = ((probabilities - F.one_hot(targets, num_classes).float()) ** 2).sum(1).mean()
    return {"ece": float(ece), "nll": float(nll), "brier": float(brier)}


def reliability_bins(probabilities: torch.Tensor, targets: torch.Tensor, num_bins: int = NUM_BINS
                     ) -> dict[str, torch.Tensor]:
    """Equal-width bins of the top-class confidence (bin i holds (i/B, (i+1)/B], as torchmetrics bins them):
    "confidence" (mean), "accuracy" and "count" per bin (empty bins: 0)."""
    confidence, predicted = probabilities.float().cpu().max(1)
    correct = (predicted == targets.long().cpu()).float()
    edges = torch.linspace(0, 1, num_bins + 1)
    index = (torch.bucketize(confidence, edges, right=False) - 1).clamp(0, num_bins - 1)
    count = torch.zeros(num_bins).index_add_(0, index, torch.ones_like(confidence))
    total_conf = torch.zeros(num_bins).index_add_(0, index, confidence)
    total_correct = torch.zeros(num_bins).index_add_(0, index, correct)
    safe = count.clamp_min(1)
    return {"confidence": total_conf / safe, "accuracy": total_correct / safe, "count": count, "edges": edges}


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, max_iter: int = 200) -> float:
    """The temperature T > 0 minimising the cross-entropy of `logits / T` (LBFGS on log T, from T = 1)."""
    logits, targets = logits.detach().float().cpu(), targets.long().cpu()
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())

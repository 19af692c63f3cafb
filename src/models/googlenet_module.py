"""GoogLeNet's training: the two auxiliary classifiers add their loss, weighted, to the main one.

In training mode `GoogLeNet` returns `GoogLeNetOutputs(logits, aux_logits1, aux_logits2)`; in eval
mode only the logits, so validation, test and prediction are `ClassificationModule`'s unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from src.errors import require
from src.models.classifier import ClassificationModule
from src.models.nets.googlenet import GoogLeNetOutputs


class GoogLeNetModule(ClassificationModule):
    """Training loss = main + aux_weight * (aux1 + aux2) (Szegedy et al. use 0.3); `train/loss` is
    this total, `train/acc` and all evaluation use the main head."""

    def __init__(
        self,
        net: dict[str, Any],
        num_classes: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        loss: str = "cross_entropy",
        l1: float = 0.0,
        aux_weight: float = 0.3,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, num_classes, optimizer, scheduler, loss, l1, **kwargs)
        require(aux_weight >= 0, f"model.aux_weight must be >= 0, got {aux_weight}.")
        self.aux_weight = float(aux_weight)

    def training_loss(self, outputs: Any, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(outputs, GoogLeNetOutputs):  # auxiliary heads switched off
            return super().training_loss(outputs, targets)
        loss = self.compute_loss(outputs.logits, targets)
        if self.aux_weight:
            aux = self.compute_loss(outputs.aux_logits1, targets) + self.compute_loss(outputs.aux_logits2, targets)
            loss = loss + self.aux_weight * aux
        return outputs.logits, loss

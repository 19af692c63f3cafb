"""Two classes from one output unit: the logic gates and XOR of the course notes."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from src.errors import require
from src.models.classifier import TRICKS, ClassificationModule


class BinaryClassificationModule(ClassificationModule):
    """Two classes from one output unit: sigmoid + binary cross-entropy (the gates, XOR).

    Metrics see two-column scores [1 - p, p], so accuracy, precision/recall and the confusion
    matrix are computed exactly as for any two-class problem. The training tricks do not apply.
    """

    def __init__(self, net: dict[str, Any], optimizer: dict[str, Any], scheduler: dict[str, Any] | None = None,
                 num_classes: int = 2, loss: str = "binary_cross_entropy", l1: float = 0.0, **kwargs: Any) -> None:
        super().__init__(net, num_classes, optimizer, scheduler, loss, l1, **kwargs)

    def check_task(self) -> None:
        hp = self.hparams
        require(hp.num_classes == 2, f"this model has one output unit for a two-class problem, but the data set has "
                                     f"{hp.num_classes} classes; use a multi-class model such as model=mlp.")
        require(hp.loss == "binary_cross_entropy", "a binary model trains with loss=binary_cross_entropy.")
        for key in TRICKS:
            require(not hp.get(key), f"a binary model (one output unit) trains without model.{key}; drop it.")

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Sigmoid + `nn.BCELoss` on the one output unit, computed stably from the logit."""
        return F.binary_cross_entropy_with_logits(outputs.reshape(-1), targets.to(outputs.dtype).reshape(-1))

    def class_scores(self, outputs: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(outputs.float().reshape(-1, 1))
        return torch.cat([1 - p, p], dim=1)

    def predicted_classes(self, outputs: torch.Tensor) -> torch.Tensor:
        return (outputs.reshape(-1) > 0).long()  # p > 0.5: the argmax of [1 - p, p] (a tie is class 0)

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.class_scores(outputs)  # already [1 - p, p]

"""Class imbalance on the model side, loaded only when a model config chooses it (src/builders.py):
`model.class_weights=inv_freq|effective_num` (src/models/class_weights.py, from the training split's class
counts) and `model.loss=focal` (Lin et al., 2017: cross-entropy scaled by (1 - p_true) ** model.focal_gamma).

Both shape the training loss only, as label smoothing does: validation and test report the plain
cross-entropy, so `val/loss` compares across runs, and a checkpoint's stored hyper-parameters are the plain
module's (src.eval, src.predict and src.export rebuild it without this file); the run's config keeps the
choices. The weights are printed at the start of training and logged as parameters `class_weight/<class>`
(TensorBoard: the TEXT tab's `class_weights`).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger

from src.errors import UserError, require
from src.models.class_weights import METHODS, check_method, class_weights
from src.models.classifier import ClassificationModule


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float, weight: torch.Tensor | None = None,
               label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean of -sum_c w_c q_c (1 - p_c) ** gamma log p_c over the batch, q the (smoothed) target distribution
    (class indices (N,) or probabilities (N, C)), divided by the summed weights of the targets as
    `F.cross_entropy(weight=...)` does; gamma = 0 is the (weighted) cross-entropy."""
    log_p = F.log_softmax(logits.float(), dim=1)
    q = F.one_hot(target, logits.shape[1]).to(log_p.dtype) if not target.is_floating_point() else target.float()
    if label_smoothing:
        q = q * (1.0 - label_smoothing) + label_smoothing / logits.shape[1]
    w = weight.to(log_p) if weight is not None else torch.ones(logits.shape[1], device=log_p.device)
    per_class = -(q * w) * (1.0 - log_p.exp()).pow(gamma) * log_p
    return per_class.sum() / (q * w).sum().clamp(min=1e-12)


class ImbalanceLoss:
    """Module side: the training loss weighted by class and/or focal."""

    def __init__(self, **kwargs: Any) -> None:
        # Taken out of the arguments the base sees (and stores): the checkpoint holds the plain module's.
        loss, weighting = kwargs.pop("loss", "cross_entropy"), kwargs.pop("class_weights", "none")
        beta, gamma = kwargs.pop("class_weights_beta", 0.999), kwargs.pop("focal_gamma", 2.0)
        check_method(weighting, beta)
        require(isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and gamma >= 0,
                f"model.focal_gamma must be a number >= 0 (0: no focusing), got {gamma!r}.")
        require(loss in ("cross_entropy", "focal"), f"model.class_weights weighs model.loss=cross_entropy or focal, "
                                                     f"not {loss!r}; set model.loss=cross_entropy.")
        super().__init__(loss="cross_entropy", **kwargs)
        self.weighting, self.beta, self.focal = weighting, float(beta), loss == "focal"
        self.gamma = float(gamma) if self.focal else 0.0
        self.class_weight: torch.Tensor | None = None  # set from the training split at the start of fitting

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.weighting != "none":
            counts = training_counts(self)
            weights = class_weights(counts, self.weighting, self.beta)
            self.class_weight = torch.tensor(weights, dtype=torch.float32)
            report_weights(self, counts, weights)

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().compute_loss(outputs, targets)  # the plain cross-entropy (the module's docstring)
        weight = None if self.class_weight is None else self.class_weight.to(outputs.device)
        smoothing = self.hparams.label_smoothing
        if not self.focal and not targets.is_floating_point():
            return F.cross_entropy(outputs, targets, weight=weight, label_smoothing=smoothing)
        return focal_loss(outputs, targets, self.gamma, weight, smoothing)


class PositiveWeights:
    """Module side for several labels per sample: `model.class_weights` gives each label's `pos_weight` of the
    binary cross-entropy, from the training split's positive counts per label (the same formulas)."""

    def __init__(self, **kwargs: Any) -> None:
        weighting, beta = kwargs.pop("class_weights", "none"), kwargs.pop("class_weights_beta", 0.999)
        kwargs.pop("focal_gamma", None)
        check_method(weighting, beta)
        require(kwargs.get("loss", "cross_entropy") == "cross_entropy", "model.class_weights weighs the per-label "
                "binary cross-entropy of several labels per sample (its pos_weight); set model.loss=cross_entropy.")
        require(kwargs.get("pos_weight") is None, "model.pos_weight and model.class_weights both set each label's "
                                                  "pos_weight; keep one of them.")
        super().__init__(**kwargs)
        self.weighting, self.beta = weighting, float(beta)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.weighting != "none":
            counts = training_counts(self)
            weights = class_weights(counts, self.weighting, self.beta)
            self.pos_weight = torch.tensor(weights, dtype=torch.float32, device=self.device)
            report_weights(self, counts, weights, "pos_weight")


def training_counts(module: Any) -> list[int]:
    """Samples per class of the training split, or positives per label ((N, L) 0/1 targets)."""
    split = getattr(module.trainer.datamodule, "train_split", None)
    if split is None:
        raise UserError(f"model.class_weights={module.weighting} needs the training split's class counts, which "
                        "this data module does not hold in memory; set model.class_weights=none.")
    targets = split.targets.cpu().long()
    if targets.ndim == 2:
        return targets.sum(0).tolist()
    return torch.bincount(targets, minlength=module.num_classes).tolist()


def report_weights(module: Any, counts: list[int], weights: list[float], kind: str = "class_weight") -> None:
    """Print the weights and log them as parameters `<kind>/<class>` (TensorBoard: a text `<kind>s`)."""
    names = getattr(module.trainer.datamodule, "class_names", None)
    if not names or len(names) != len(weights):
        names = [str(i) for i in range(len(weights))]
    method = module.weighting + (f" (beta={module.beta:g})" if module.weighting == "effective_num" else "")
    title = "Label pos_weights" if kind == "pos_weight" else "Class weights"
    if module.trainer.is_global_zero:
        print(f"{title}, {method}, from the training split's counts: "
              + ", ".join(f"{n}: {c} -> {w:.4g}" for n, c, w in zip(names, counts, weights)), flush=True)
    params = {f"{kind}/{re.sub(r'[^A-Za-z0-9_.-]+', '_', n)}": w for n, w in zip(names, weights)}
    for logger in module.trainer.loggers:  # TensorBoard's HPARAMS table is written at the end: a text there
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(kind + "s", "\n".join(f"    {k}: {v:.6g}" for k, v in params.items()))
        else:
            logger.log_hyperparams(params)


@functools.cache
def weighted_module_class(base: type) -> type:
    """`base` (a `ClassificationModule` class, maybe a K-step variant) with class weights and the focal loss.
    It keeps the base's name, so checkpoints store its hyper-parameters as the base's."""
    if getattr(base, "task", None) == "multilabel":  # several labels per sample: weights as pos_weight
        return type(base.__name__, (PositiveWeights, base), {"__qualname__": base.__qualname__,
                                                            "__module__": base.__module__})
    own = base.compute_loss is not ClassificationModule.compute_loss or base.check_task is not \
        ClassificationModule.check_task
    if not issubclass(base, ClassificationModule) or own:
        raise UserError(f"model.class_weights and model.loss=focal weigh the softmax cross-entropy; {base.__name__} "
                        f"trains with a loss of its own: set model.class_weights=none and model.loss=cross_entropy.")
    return type(base.__name__, (ImbalanceLoss, base), {"__qualname__": base.__qualname__,
                                                      "__module__": base.__module__})

__all__ = ["METHODS", "focal_loss", "weighted_module_class"]

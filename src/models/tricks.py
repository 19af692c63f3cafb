"""Training tricks of `ClassificationModule`, each off by default (docs/recipes.md); this code loads only
when a config turns one on.

- `label_smoothing`: the training loss's target distribution becomes (1 - e) * target + e / C.
- `mixup_alpha` / `cutmix_alpha`: mixup / cutmix of a training batch (torchvision's `transforms.v2.MixUp` /
  `CutMix`), which turns class-index targets into soft targets (N, C); both on: one of the two per batch.
- `tta_flip`: validation, test and prediction average the softmax of each image and its mirror image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from src.errors import UserError, require


class Tricks:
    """The tricks a module's hyper-parameters turn on, checked in one place before anything is built."""

    def __init__(self, hparams: Mapping[str, Any]) -> None:
        smoothing = hparams.get("label_smoothing", 0.0)
        require(isinstance(smoothing, (int, float)) and 0 <= smoothing < 1,
                f"model.label_smoothing must be in [0, 1) (e.g. 0.1; 0 = off), got {smoothing!r}.")
        for key in ("mixup_alpha", "cutmix_alpha"):
            value = hparams.get(key, 0.0)
            require(isinstance(value, (int, float)) and value >= 0,
                    f"model.{key} must be >= 0 (e.g. 0.2 for mixup, 1.0 for cutmix; 0 = off), got {value!r}.")
        shape = hparams["net"].get("input_shape")
        for key in ("mixup_alpha", "cutmix_alpha", "tta_flip"):
            require(not hparams.get(key) or shape is None or len(shape) == 3,
                    f"model.{key} works on images (C, H, W), but this data set's inputs have shape "
                    f"{list(shape or [])}; drop model.{key} for it.")
        mixup, cutmix = hparams.get("mixup_alpha", 0.0), hparams.get("cutmix_alpha", 0.0)
        self.mixer = BatchMixer(hparams["num_classes"], mixup, cutmix) if mixup or cutmix else None
        self.tta_flip = bool(hparams.get("tta_flip"))

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch, mixed when mixup or cutmix is on."""
        return self.mixer(x, y) if self.mixer is not None else (x, y)

    def eval_outputs(self, net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """What evaluation scores: the logits, or with tta_flip the flip-averaged log-probabilities."""
        return flip_tta_log_probs(net, x) if self.tta_flip else net(x)


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

"""The speed-run's training (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU",
arXiv 2404.00498) as a `ClassificationModule` family: what differs from the base class is here.

- Whitening: in `setup("fit")` the net's `PatchWhitening` layer is set from the 2x2 patches of the
  first `whiten_images` training images (normalised as training normalises them); its bias trains
  for the first `whiten_bias_epochs` epochs only.
- Optimisation: Nesterov SGD with the paper's *decoupled* hyper-parameters (`decoupled=true`):
  `optimizer.lr` and `optimizer.weight_decay` are given per 1024 examples and independent of the
  momentum; with batch size B, momentum m and s = 1024 (1 + 1 / (1 - m)), PyTorch gets
  lr = optimizer.lr * B / s (this template averages the loss over the batch) and every parameter
  decays by optimizer.weight_decay * B / s per step (times the schedule's factor); batch-norm
  biases get `bias_scaler` (64) times the lr but the same decay. The lr factor rises linearly
  from `lr_start_factor` (0.2) to 1 over the first `warmup_fraction` (23 %) of the steps, then
  falls linearly to `lr_end_factor` (0.07), stepped every optimizer step.
- Length: `train_epochs` (e.g. 9.9) ends training, and the schedule, after
  ceil(train_epochs * batches per epoch) steps, inside the last epoch (`trainer.max_epochs` must
  cover it: 10 for 9.9).
- Lookahead: every `lookahead_every` (5) steps, slow <- slow + (1 - a) (fast - slow) and
  fast <- slow, with a = lookahead_decay ** lookahead_every * (step / total) ** 3 (all float
  parameters and batch-norm statistics); after the last step the net holds the slow weights.
- Label smoothing 0.2 (the base class's `label_smoothing`, training loss only).
- Test-time augmentation (`tta_level`, test and predict): 0 = none; 1 = mean logits of the image
  and its mirror image; 2 = half that, plus a quarter each of the same for the image translated
  by one pixel up-left and down-right (reflect padding): 6 views. Validation during training uses
  `val_tta_level` (0, as the paper evaluates without TTA until the end).
- The alternating flip (`src.data.batch_augment.AlternatingFlip`, first in `augment`) learns the
  epoch from `on_train_epoch_start`.

Hooks added here because `ClassificationModule` has none for them: whitening from data
(`setup`), per-epoch freezing and the augmentation epoch (`on_train_epoch_start`), the step budget
(`on_train_batch_start` returns -1), lookahead (`on_train_batch_end`, `on_train_end`, checkpoint
hooks), TTA (`eval_outputs`, `predict_proba`), and the optimizer (`configure_optimizers`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from src.config.names import OPTIMIZER_OWN_KEYS
from src.errors import require
from src.lightning_internals import attached_trainer
from src.models.classifier import ClassificationModule
from src.models.nets.speedrun import PatchWhitening
from src.models.speedrun_schedule import decoupled_sgd, set_augmentation_epoch, speedrun_lr_factor, tta_logits

__all__ = ["SpeedrunModule"]


class SpeedrunModule(ClassificationModule):
    """`ClassificationModule` with the speed-run's whitening, optimiser, schedule, lookahead and TTA."""

    def __init__(
        self,
        net: dict[str, Any],
        num_classes: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        loss: str = "cross_entropy",
        l1: float = 0.0,
        label_smoothing: float = 0.2,
        batch_size: int | None = 1024,
        decoupled: bool = True,
        bias_scaler: float = 64.0,
        warmup_fraction: float = 0.23,
        lr_start_factor: float = 0.2,
        lr_end_factor: float = 0.07,
        train_epochs: float | None = None,
        whiten_bias_epochs: int = 3,
        whiten_images: int = 5000,
        whiten_eps: float = 5e-4,
        lookahead: bool = True,
        lookahead_every: int = 5,
        lookahead_decay: float = 0.95,
        tta_level: int = 2,
        val_tta_level: int | None = 0,
        **kwargs: Any,
    ) -> None:
        require(not kwargs.get("tta_flip"), "the speed-run module has its own test-time augmentation "
                                            "(model.tta_level); drop model.tta_flip.")
        super().__init__(net=net, num_classes=num_classes, optimizer=optimizer, scheduler=scheduler, loss=loss,
                         l1=l1, label_smoothing=label_smoothing, **kwargs)
        sched = scheduler or {}
        require(
            "_target_" not in sched and not sched.get("warmup_steps") and not sched.get("warmup_epochs"),
            "the speed-run module has its own lr schedule (model.warmup_fraction, lr_start_factor, lr_end_factor); "
            "use scheduler=none.",
        )
        momentum = optimizer.get("momentum")
        require(
            not decoupled or (isinstance(momentum, (int, float)) and 0 <= momentum < 1),
            f"model.decoupled=true converts the paper's SGD values and needs optimizer=sgd with a momentum in [0, 1), "
            f"got optimizer.momentum={momentum!r}; use optimizer=sgd or model.decoupled=false.",
        )
        require(
            not decoupled or (isinstance(batch_size, int) and batch_size > 0),
            f"model.decoupled=true scales the lr by the batch size: model.batch_size must be a positive integer "
            f"(it follows data.batch_size), got {batch_size!r}.",
        )
        for key, value in (("tta_level", tta_level), ("val_tta_level", val_tta_level)):
            require(value is None or value in (0, 1, 2), f"model.{key} must be 0, 1 or 2, got {value!r}.")
        require(train_epochs is None or train_epochs > 0,
                f"model.train_epochs must be > 0 or null, got {train_epochs}.")
        require(0 <= warmup_fraction < 1, f"model.warmup_fraction must be in [0, 1), got {warmup_fraction}.")
        require(lookahead_every >= 1, f"model.lookahead_every must be >= 1, got {lookahead_every}.")
        require(0 <= lookahead_decay <= 1, f"model.lookahead_decay must be in [0, 1], got {lookahead_decay}.")
        require(whiten_images >= 1 and whiten_eps > 0, "model.whiten_images must be >= 1 and model.whiten_eps > 0.")
        self.batch_size, self.decoupled, self.bias_scaler = batch_size, bool(decoupled), float(bias_scaler)
        self.warmup_fraction, self.lr_start_factor, self.lr_end_factor = warmup_fraction, lr_start_factor, lr_end_factor
        self.train_epochs = train_epochs
        self.whiten_bias_epochs, self.whiten_images, self.whiten_eps = whiten_bias_epochs, whiten_images, whiten_eps
        self.lookahead, self.lookahead_every, self.lookahead_decay = bool(lookahead), lookahead_every, lookahead_decay
        self.tta_level = tta_level
        self.val_tta_level = tta_level if val_tta_level is None else val_tta_level
        self.total_steps: int | None = None  # optimizer steps of the whole run, set in configure_optimizers
        self._slow: list[torch.Tensor] | None = None  # lookahead's slow weights
        self._last_lookahead_step = -1
        self._lookahead_done = False

    # --- whitening, epoch-dependent settings ------------------------------------------------------------
    @property
    def whitening(self) -> PatchWhitening | None:
        layer = getattr(self.net, "whiten", None)
        return layer if isinstance(layer, PatchWhitening) else None

    def _datamodule(self) -> Any:
        trainer = attached_trainer(self)
        return trainer.datamodule if trainer is not None else None

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self._datamodule()
        if stage == "fit":
            self._check_alternating_flip(datamodule)
            self.fit_whitening(datamodule)

    def fit_whitening(self, datamodule: Any) -> torch.Tensor | None:
        """Set the whitening filters from the first `whiten_images` training images; returns the
        patch covariance's eigenvalues (None when the net has no whitening layer or there is no data)."""
        layer = self.whitening
        if layer is None:
            return None
        split = getattr(datamodule, "train_split", None)
        if split is None:
            rank_zero_warn("SpeedrunModule: no data module with a train_split; the whitening layer keeps its "
                           "random initialisation.")
            return None
        images = split.inputs[: self.whiten_images]
        transform = getattr(datamodule, "transform", None)
        images = transform(images) if transform is not None else images.float()
        return layer.fit(images, eps=self.whiten_eps)

    @staticmethod
    def _check_alternating_flip(datamodule: Any) -> None:
        steps = getattr(getattr(datamodule, "train_transform", None), "transforms", [])
        flips = any(callable(getattr(t, "set_epoch", None)) for t in steps)  # epoch-aware: the alternating flip
        workers = getattr(datamodule, "num_workers", None)
        require(
            not flips or getattr(datamodule, "loader", "tensor") == "tensor" or workers == 0,
            "the alternating flip learns the epoch in the main process, which DataLoader workers do not see; "
            "use data.loader=tensor (or data.num_workers=0).",
        )

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        layer = self.whitening
        if layer is not None:
            layer.bias.requires_grad_(self.current_epoch < self.whiten_bias_epochs)
        datamodule = self._datamodule()
        transform = getattr(datamodule, "train_transform", None)
        if transform is not None:
            set_augmentation_epoch(transform, self.current_epoch)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        """-1 (skip the rest of the epoch) once the step budget of `train_epochs` is spent."""
        if self.train_epochs is not None and self.total_steps is not None and self.global_step >= self.total_steps:
            return -1
        return None

    # --- optimisation ------------------------------------------------------------------------------------
    def planned_steps(self) -> int:
        """Optimizer steps of the run: the trainer's estimate, cut to ceil(train_epochs * steps per epoch)."""
        estimated = int(self.planned_optimizer_steps())  # also counts the batches per epoch
        if self.train_epochs is None:
            return max(estimated, 1)
        per_epoch = self.trainer.num_training_batches / max(self.trainer.accumulate_grad_batches, 1)
        return max(1, min(estimated, math.ceil(self.train_epochs * per_epoch)))

    def param_groups(self, lr: float, decay_per_step: float) -> list[dict[str, Any]]:
        """Batch-norm biases (lr x bias_scaler) and every other trainable parameter; each group's
        weight_decay is decay_per_step / its lr, so both decay by the same amount per step."""
        norms = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        norm_biases = [m.bias for m in norms if m.bias is not None and m.bias.requires_grad]
        taken = {id(p) for p in norm_biases}
        others = [p for p in self.net.parameters() if p.requires_grad and id(p) not in taken]
        groups = []
        for params, group_lr in ((norm_biases, lr * self.bias_scaler), (others, lr)):
            if params:
                groups.append({"params": params, "lr": group_lr, "weight_decay": decay_per_step / group_lr})
        return groups

    def configure_optimizers(self) -> Any:
        cfg = {k: v for k, v in self.hparams.optimizer.items() if k not in OPTIMIZER_OWN_KEYS}  # its own groups
        lr, weight_decay = float(cfg["lr"]), float(cfg.get("weight_decay") or 0.0)
        if self.decoupled:
            lr, decay = decoupled_sgd(lr, weight_decay, float(cfg["momentum"]), int(self.batch_size))
        else:
            decay = lr * weight_decay  # PyTorch's own meaning of weight_decay
        groups = self.param_groups(lr, decay)
        optimizer = instantiate(cfg)(params=groups, lr=lr, weight_decay=groups[-1]["weight_decay"])
        self.total_steps = total = self.planned_steps()
        factor = lambda step: speedrun_lr_factor(  # noqa: E731
            step, total, self.warmup_fraction, self.lr_start_factor, self.lr_end_factor)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- lookahead ---------------------------------------------------------------------------------------
    def _fast_weights(self) -> list[torch.Tensor]:
        return [t.detach() for t in self.net.state_dict(keep_vars=True).values() if t.is_floating_point()]

    @torch.no_grad()
    def lookahead_update(self, decay: float) -> None:
        """slow <- slow + (1 - decay) (fast - slow); fast <- slow."""
        fast = self._fast_weights()
        if self._slow is None:
            self._slow = [t.clone() for t in fast]
        torch._foreach_lerp_(self._slow, fast, 1.0 - decay)
        torch._foreach_copy_(fast, self._slow)

    def on_train_start(self) -> None:
        super().on_train_start()
        if not self.lookahead:
            return
        fast = self._fast_weights()
        if self._slow is None:
            self._slow = [t.clone() for t in fast]
        else:  # restored from a checkpoint, possibly before the net moved to its device
            self._slow = [s.to(device=f.device) for s, f in zip(self._slow, fast)]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.lookahead or self.total_steps is None:
            return
        step, total = self.global_step, self.total_steps
        if step % self.lookahead_every == 0 and step != self._last_lookahead_step:
            self._last_lookahead_step = step
            self.lookahead_update(self.lookahead_decay ** self.lookahead_every * min(step / total, 1.0) ** 3)
        if step >= total and not self._lookahead_done:
            self.lookahead_update(1.0)  # the net ends on the slow weights
            self._lookahead_done = True

    def on_train_end(self) -> None:
        if self.lookahead and self._slow is not None and not self._lookahead_done:
            self.lookahead_update(1.0)  # stopped before the planned last step (max_epochs, early stopping)
            self._lookahead_done = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self._slow is not None:
            checkpoint["speedrun_lookahead"] = {"slow": [t.detach().clone() for t in self._slow],
                                                "last_step": self._last_lookahead_step}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("speedrun_lookahead")
        if state:
            self._slow = list(state["slow"])
            self._last_lookahead_step = int(state["last_step"])

    # --- evaluation ----------------------------------------------------------------------------------------
    def _tta_level(self) -> int:
        trainer = attached_trainer(self)
        if trainer is not None and (trainer.validating or trainer.sanity_checking):
            return self.val_tta_level
        return self.tta_level

    def eval_outputs(self, x: torch.Tensor) -> torch.Tensor:
        return tta_logits(self, x, self._tta_level())

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(tta_logits(self.net, x, self.tta_level), dim=1)

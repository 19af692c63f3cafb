"""`callbacks.freeze_backbone.epochs=N`: train only the new classifier head for N epochs, then everything.

While frozen, the backbone's parameters take no gradient (`requires_grad=False`: the optimizer skips
them, weight decay included) and its BatchNorm layers stay in eval mode, so their pretrained
running statistics are used and kept. At the start of epoch N the backbone is unfrozen (its
parameters were in the optimizer from the start, with their own learning rate when
`optimizer.backbone_lr_scale` is set). This is Lightning's `BackboneFinetuning` idea without its
optimizer surgery: since no parameter group is added mid-run, a run resumed from any epoch restores
its optimizer as it was saved. Chosen by config: `callbacks=[default,freeze_backbone]` (conf/callbacks/).
"""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.strategies import DDPStrategy
from torch.nn.modules.batchnorm import _BatchNorm

from src.errors import require
from src.lightning_internals import ddp_finds_unused_parameters
from src.models.finetune import backbone_modules, split_parameters

log = logging.getLogger(__name__)


class FreezeBackbone(L.Callback):
    """Freeze `pl_module.net`'s backbone (all but its classifier head) for the first `epochs` epochs."""

    def __init__(self, epochs: int = 1) -> None:
        require(isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0,
                f"callbacks.freeze_backbone.epochs must be a whole number of epochs >= 0 (0 = never frozen), "
                f"got {epochs!r}.")
        self.epochs = epochs
        self._trainable: dict[int, bool] | None = None  # requires_grad of each backbone parameter before freezing

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or trainer.world_size == 1:
            return
        # DDP must be told that some parameters get no gradient in some steps.
        require(
            not isinstance(trainer.strategy, DDPStrategy) or ddp_finds_unused_parameters(trainer.strategy),
            "callbacks.freeze_backbone under DDP needs trainer.strategy=ddp_find_unused_parameters_true (frozen "
            "parameters get no gradient); set it, or drop the freezing.",
        )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        backbone, _ = split_parameters(net)
        if trainer.current_epoch < self.epochs:
            if self._trainable is None:
                self._trainable = {id(p): p.requires_grad for p in backbone}
                for p in backbone:
                    p.requires_grad_(False)
                if trainer.is_global_zero:
                    log.info("Backbone frozen (BatchNorm in eval mode) until epoch %d: %s parameters; only the "
                             "classifier head trains.", self.epochs, f"{sum(p.numel() for p in backbone):,}")
            for module in backbone_modules(net):  # every epoch: validation restores the modes it found
                if isinstance(module, _BatchNorm):
                    module.eval()
        elif self._trainable is not None:
            for p in backbone:
                p.requires_grad_(self._trainable.get(id(p), True))
            for module in backbone_modules(net):
                if isinstance(module, _BatchNorm):
                    module.train()
            self._trainable = None
            if trainer.is_global_zero:
                log.info("Backbone unfrozen at epoch %d: every parameter trains now.", trainer.current_epoch)

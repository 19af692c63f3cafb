"""Build a run's objects from its config: data module, LightningModule, callbacks, loggers, Trainer."""

from __future__ import annotations

from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from src.config.names import DATA_OWN_KEYS, MODEL_OWN_KEYS, plain
from src.errors import UserError, require
from src.runs.checkpoint_writer import AtomicCheckpointIO


def steps_per_call(run_config: dict[str, Any]) -> int:
    """The run's `steps_per_call` K; K != 1 is checked by its own module (src/models/multi_step.py), loaded then."""
    k = run_config.get("steps_per_call", 1)
    if k != 1:
        from src.models.multi_step import check_setting
        check_setting(run_config)
    return k


def _target_class(target: str, steps_per_call: int, distill: dict[str, Any] | None = None) -> type:
    """The class a `_target_` names; its variant learning from `distill.teacher`, and taking K > 1 steps per call."""
    cls = get_class(target)
    if (distill or {}).get("teacher") is not None:  # a student of a teacher's outputs (src/models/distill.py)
        from src.runs.teacher import student_class
        cls = student_class(cls, distill)
    if steps_per_call == 1:
        return cls
    from src.models.multi_step import multi_step_class
    return multi_step_class(cls, steps_per_call)


def build_datamodule(data_cfg: DictConfig | dict, augment: DictConfig | dict | None = None, steps_per_call: int = 1):
    """The data config's DataModule; `augment` (the augment group) applies to its training batches. Not
    recursive: `augment` entries are configs the DataModule instantiates itself, in order."""
    kwargs = plain(data_cfg)
    if augment:
        kwargs["augment"] = plain(augment)
    cls = _target_class(kwargs.pop("_target_"), steps_per_call)
    if kwargs.get("imbalance_ratio") is not None or kwargs.get("sampler", "random") != "random":
        from src.data.imbalance import imbalanced_data_class  # a long-tailed split, the balanced sampler
        return imbalanced_data_class(cls)(**kwargs)
    return cls(**{k: v for k, v in kwargs.items() if k not in DATA_OWN_KEYS})


def build_module(model_cfg: DictConfig | dict, optimizer_cfg: Any, scheduler_cfg: Any, steps_per_call: int = 1,
                 distill: Any = None, **arguments: Any):
    """The LightningModule: its config's `_target_` class (`distill`: the run's distill settings) called with plain
    values; `arguments`: constructor arguments beyond the config (e.g. the tuner's `stop_on_non_finite_loss`)."""
    kwargs = {**plain(model_cfg), **arguments}
    cls = _target_class(kwargs.pop("_target_"), steps_per_call, plain(distill))
    weighted = kwargs.get("class_weights", "none") != "none" or kwargs.get("loss") == "focal"
    if weighted:
        from src.models.imbalance import weighted_module_class  # class weights, the focal loss
        cls = weighted_module_class(cls)
    kwargs = {k: v for k, v in kwargs.items() if weighted or k not in MODEL_OWN_KEYS}
    return cls(optimizer=plain(optimizer_cfg), scheduler=plain(scheduler_cfg) or None, **kwargs)


def build_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group; `null` entries are switched off."""
    return [instantiate(node) for node in (group or {}).values() if node is not None and "_target_" in node]


def resolve_precision(accelerator: str, precision: Any) -> Any:
    """`precision: auto` -> bf16-mixed on GPUs that support it, else 16-mixed; 32-true on the CPU."""
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def build_trainer(trainer_cfg: DictConfig, callbacks: list, loggers: list,
                  checkpoint_contents: dict[str, Any] | None = None):
    """The Lightning Trainer of the trainer config; `checkpoint_contents` go into every checkpoint it
    writes (through its `AtomicCheckpointIO` plugin: src/runs/checkpoint_writer.py)."""
    kwargs = plain(trainer_cfg)
    epochs = kwargs.get("max_epochs")
    require(isinstance(epochs, int) and (epochs > 0 or epochs == -1),
            f"trainer.max_epochs must be a positive integer (or -1 for no limit), got {epochs!r}.")
    check_accelerator(kwargs.get("accelerator", "auto"))
    kwargs["precision"] = resolve_precision(kwargs.get("accelerator", "auto"), kwargs.get("precision"))
    # No checkpoint callback configured (e.g. callbacks=none) means no checkpoints, not Lightning's default one.
    kwargs.setdefault("enable_checkpointing", any(isinstance(c, ModelCheckpoint) for c in callbacks))
    kwargs["plugins"] = [AtomicCheckpointIO(checkpoint_contents) if get_class(p["_target_"]) is AtomicCheckpointIO
                         else p for p in kwargs.get("plugins") or []]
    try:
        return instantiate(kwargs, callbacks=callbacks, logger=loggers or False)
    except InstantiationException as exc:  # Hydra wraps the Trainer's own refusal of its settings
        cause = exc.__cause__
        if not isinstance(cause, (MisconfigurationException, ValueError)):
            raise
        text = str(cause).strip()
        reason = text.splitlines()[0].split(". ")[0].rstrip(".!") if text else type(cause).__name__  # first sentence
        raise UserError(f"the Lightning Trainer refused these trainer.* settings ({reason}); "
                        "change the trainer.* value it names, or pick another trainer=... config.") from exc


def check_accelerator(accelerator: Any) -> None:
    """`trainer.accelerator=gpu` (also trainer=gpu, ddp, fsdp) on a machine without a usable GPU: one sentence."""
    name = str(accelerator).lower()
    if name in ("gpu", "cuda"):
        require(torch.cuda.is_available(), f"trainer.accelerator={accelerator} needs a CUDA GPU, but PyTorch finds "
                "none on this machine; use trainer.accelerator=auto (or trainer=cpu), or run where a GPU is visible.")
    elif name == "mps":
        require(torch.backends.mps.is_available(), "trainer.accelerator=mps needs Apple's Metal GPU, which PyTorch "
                "does not find here; use trainer.accelerator=auto or trainer=cpu.")

"""Trained models for the visuals: from a checkpoint written by `src.train`, or trained here, in
process, with a course-notes recipe's own settings (`conf/experiment/<name>.yaml`) when none is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import src.config.resolvers  # noqa: F401  (registers ${len:...})
from src.builders import build_module
from src.config.names import CONF, plain
from src.errors import UserError
from src.inference.model import rebuild_module
from src.runs.checkpoint import load_checkpoint
from src.teaching.data import load_datamodule


@dataclass
class Trained:
    """A LightningModule (eval mode, CPU), its data module (set up) and where the weights came from."""

    module: Any
    datamodule: Any
    data_cfg: dict[str, Any]
    source: str

    @property
    def net_name(self) -> str:
        return type(self.module.net).__name__

    @torch.no_grad()
    def accuracy(self, split: str = "test") -> float:
        data = getattr(self.datamodule, f"{split}_split")
        x = self.datamodule.transform(data.inputs) if self.datamodule.transform else data.inputs.float()
        predicted = self.module.predict_proba(x).argmax(1)
        return float((predicted == data.targets).float().mean())


def load_trained(ckpt_path: str) -> Trained:
    """The checkpoint's module and its data, rebuilt from the run configuration the checkpoint holds
    (the loader of src.eval and src.predict: the caller's random numbers are left alone)."""
    path, ckpt = load_checkpoint(ckpt_path)
    config = ckpt["run_config"]
    module = rebuild_module(path, ckpt, calibrated=False)  # the layers as trained
    return Trained(module, load_datamodule(config["data"]), dict(config["data"]), str(path))


def recipe_config(experiment: str):
    """The composed `train` config of `experiment=<name>` (inside or outside a running Hydra app)."""
    overrides = [f"experiment={experiment}"]
    if GlobalHydra.instance().is_initialized():
        return compose(config_name="train", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def train_in_process(experiment: str, steps: int | None = None) -> Trained:
    """Train `experiment`'s model on its data with its optimizer, full batch as the recipe says,
    for its number of steps (`steps` to shorten it), in a plain PyTorch loop: the tiny recipes
    (iris, the gates) take a second or two this way. Only recipes whose data fit in one batch."""
    cfg = recipe_config(experiment)
    if cfg.data.get("batch_size") is not None:
        raise UserError(f"experiment={experiment} is not a full-batch recipe; train it with src.train and pass its "
                        "checkpoint.")
    if steps is None:
        max_steps, epochs = int(cfg.trainer.max_steps), int(cfg.trainer.max_epochs)
        steps = max_steps if max_steps > 0 else epochs * int(cfg.data.steps_per_epoch or 1)
    L.seed_everything(int(cfg.seed), verbose=False)
    datamodule = load_datamodule(cfg.data)
    module = build_module(cfg.model, cfg.optimizer, None)
    optimizer = module.configure_optimizers()
    train = datamodule.train_split
    x = datamodule.transform(train.inputs) if datamodule.transform else train.inputs.float()
    module.train()
    for _ in range(int(steps)):
        optimizer.zero_grad(set_to_none=True)
        loss = module.compute_loss(module(x), train.targets)
        loss.backward()
        optimizer.step()
    source = f"trained in process: experiment={experiment}, {steps:,} full-batch steps"
    return Trained(module.eval(), datamodule, plain(cfg.data), source)

"""`tuner=lr_find` / `tuner=batch_size`: Lightning's batch-size and learning-rate finders, run before fit.

The finders run on the tuner's own data module and fresh models with a bare Trainer (same
accelerator and precision, no callbacks, no loggers, one optimizer step per Lightning step), so
nothing of the search reaches the run's objects, logs, checkpoints or random-number sequence:
afterwards the run is re-seeded and builds its data and model from the returned config, exactly as
if the found values had been given on the command line. What was found is printed, written to
`<run>/tuner.json`, and the learning-rate finder's loss-vs-lr plot to `<run>/lr_finder.png`.
"""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.tuner import Tuner
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from src import builders
from src.config.names import plain
from src.errors import require


def tune(cfg: DictConfig) -> DictConfig:
    """Run the finders the `tuner` config switches on, each on its own data module, model and Trainer;
    return a copy of `cfg` with `data.batch_size` / `optimizer.lr` set to what they found (`cfg` itself
    when there is nothing to do: no `tuner`, not training, or resuming, since the checkpoint's run
    already holds the tuned values)."""
    spec = cfg.get("tuner") or {}
    if not (spec.get("lr_find") or spec.get("batch_size_find")) or not cfg.get("train", True) or cfg.get("ckpt_path"):
        return cfg
    if cfg.trainer.get("fast_dev_run"):
        print("tuner: skipped, since trainer.fast_dev_run is on", flush=True)
        return cfg
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tuned = copy.deepcopy(cfg)
    found: dict[str, Any] = {}
    trainer = _tuning_trainer(cfg)
    datamodule = _tuning_datamodule(cfg, trainer)
    if spec.get("batch_size_find"):
        found.update(_find_batch_size(tuned, datamodule, trainer, dict(spec.get("batch_size_finder") or {})))
        trainer = _tuning_trainer(cfg)  # a Trainer runs one search
    if spec.get("lr_find"):
        found.update(_find_lr(tuned, datamodule, trainer, dict(spec.get("lr_finder") or {}), out_dir))
    (out_dir / "tuner.json").write_text(json.dumps(found, indent=2) + "\n")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return tuned


def _tuning_trainer(cfg: DictConfig) -> L.Trainer:
    """A bare Trainer of the run's accelerator and precision: no callbacks, loggers or checkpoints."""
    trainer_cfg = plain(cfg.trainer)
    trainer_cfg.update(
        max_epochs=100_000, max_steps=-1, min_epochs=None, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        profiler=None,
    )
    trainer = builders.build_trainer(OmegaConf.create(trainer_cfg), [], [])
    require(
        trainer.world_size == 1,
        "the tuner runs on one device; drop tuner for this multi-device run, or tune with trainer.devices=1 first.",
    )
    return trainer


def _tuning_datamodule(cfg: DictConfig, trainer: L.Trainer) -> Any:
    """The run's data with one batch per Lightning step (the finders need Lightning's automatic
    optimisation), its splits on the tuning device as fit would place them, set up already."""
    data_cfg = plain(cfg.data)  # (steps_per_call is not applied here)
    if data_cfg.get("device") is None:
        data_cfg["device"] = str(trainer.strategy.root_device)
    datamodule = builders.build_datamodule(data_cfg, cfg.get("augment"))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def _tuning_module(cfg: DictConfig) -> L.LightningModule:
    """A fresh model with one optimizer step per Lightning step that keeps going when the loss diverges
    (the lr finder drives it to diverge on purpose)."""
    return builders.build_module(cfg.model, cfg.optimizer, cfg.scheduler, stop_on_non_finite_loss=False)


def _supported(function: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments this Lightning version's `function` takes (max_val arrived in 2.6)."""
    names = inspect.signature(function).parameters
    return {k: v for k, v in kwargs.items() if k in names}


def _find_batch_size(cfg: DictConfig, datamodule: Any, trainer: L.Trainer, options: dict[str, Any]) -> dict[str, Any]:
    old = cfg.data.get("batch_size")
    require(
        old is not None,
        "tuner.batch_size_find needs a batch size to scale, but data.batch_size is null (full batch); "
        "set data.batch_size=64 or drop tuner.batch_size_find.",
    )
    tuner = Tuner(trainer)
    # In-memory loaders cut batches from tensors and have no `dataset`: cap the search at the training split.
    train_size = len(datamodule.train_split) if getattr(datamodule, "train_split", None) is not None else None
    if train_size:
        options.setdefault("max_val", train_size)
    size = tuner.scale_batch_size(_tuning_module(cfg), datamodule=datamodule,
                                  **_supported(tuner.scale_batch_size, options))  # sets datamodule.batch_size
    size = int(size or old)
    if train_size:
        size = min(size, train_size)
    datamodule.batch_size = size  # the tuner's own data module, for the lr finder
    cfg.data.batch_size = size
    print(f"tuner: data.batch_size={size} from the batch-size finder (the largest that ran without running out of "
          f"memory, within its max_trials and the training split; the config had {old})", flush=True)
    return {"batch_size": size, "batch_size_before": old}


def _find_lr(cfg: DictConfig, datamodule: Any, trainer: L.Trainer, options: dict[str, Any],
             out_dir: Path) -> dict[str, Any]:
    tuner = Tuner(trainer)
    finder = tuner.lr_find(_tuning_module(cfg), datamodule=datamodule, update_attr=False,
                           **_supported(tuner.lr_find, options))
    old = cfg.optimizer.lr
    lr = finder.suggestion() if finder is not None else None
    plot = out_dir / "lr_finder.png"
    if finder is not None and finder.results.get("lr"):
        figure = Figure(figsize=(6, 4), dpi=100)
        ax = figure.add_subplot()
        finder.plot(suggest=lr is not None, ax=ax)
        ax.set_title(f"learning-rate range test: suggested lr {lr:.3g}" if lr else "learning-rate range test")
        figure.tight_layout()
        figure.savefig(plot)
    if lr is None:
        print(f"tuner: the lr finder made no suggestion (too few finite losses); optimizer.lr stays {old}", flush=True)
        return {"lr": old, "lr_before": old, "lr_suggested": None}
    cfg.optimizer.lr = float(lr)
    print(f"tuner: optimizer.lr={lr:.4g} suggested by the lr finder (the config had {old}); plot: {plot}", flush=True)
    return {"lr": float(lr), "lr_before": old, "lr_suggested": float(lr), "lr_plot": str(plot)}

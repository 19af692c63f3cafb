"""`python -m src.train`: compose the config, build data, model, callbacks, loggers and trainer,
fit, test with the best checkpoint, and return the optimised metric (for Hydra sweepers).

    python -m src.train                                  # MLP on the 8x8 digits, offline
    python -m src.train data=iris model=softmax_regression
    python -m src.train -m optimizer.lr=0.1,0.01 trainer.max_epochs=1
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import src.config.resolvers  # noqa: F401  (registers ${len:...})
from src.errors import UserError, exits_on_user_error

log = logging.getLogger(__name__)


def train(cfg: DictConfig, composition: dict[str, Any] | None = None) -> dict[str, float]:
    """Run one training job with `cfg` as given; return its final metrics (validation and test).

    With `cfg.ckpt_path` the job continues that checkpoint (`last`: the newest of the task's runs).
    `composition` ({"choices", "overrides"}) is what the run is recorded as composed from; by default
    the Hydra job that composed `cfg`, or when resuming, the checkpoint's run."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities import rank_zero_only
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from src.callbacks.confusion_matrix import ConfusionMatrixTable
    from src.callbacks.run_config import RunConfigInCheckpoint
    from src.config import build
    from src.config.schema import validate_config
    from src.config.tree import print_config_tree
    from src.runs.checkpoint import load_checkpoint
    from src.runs.record import run_record
    from src.runs.resume import COMPOSITION_KEY, check_resumable, composition_of, keep_csv_logs, resolve_resume_path
    from src.runs.summary import one_line, scalar_metrics, write_metrics
    from src.training.tuner import tune

    started = time.perf_counter()
    quiet_library_noise()
    run_config = build.plain(cfg)
    validate_config(run_config)  # typos and wrong types stop here, before any data is loaded
    resumed_from = None
    if cfg.get("ckpt_path"):
        resumed_from, ckpt = load_checkpoint(str(resolve_resume_path(cfg.ckpt_path, cfg)))
        check_resumable(run_config, ckpt["run_config"], resumed_from)
        composition = composition or ckpt.get(COMPOSITION_KEY)
        resumed_step = ckpt.get("global_step", "unknown")
        del ckpt
    composition = composition or composition_of(cfg) or {"choices": {}, "overrides": []}
    out_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    # Building checks ranges and shapes (no data is loaded yet), so bad input stops before the run starts.
    datamodule = build.build_datamodule(cfg.data, cfg.get("augment"))
    tune(cfg, datamodule)  # tuner=...: Lightning's batch-size / lr finders set cfg's values before the model is built
    model = build.build_module(cfg.model, cfg.optimizer, cfg.scheduler, cfg.data.get("steps_per_call", 1))
    callbacks = build.build_all(cfg.get("callbacks"))
    callbacks += [RunConfigInCheckpoint(build.plain(cfg), composition), ConfusionMatrixTable(csv_dir=str(out_dir))]
    loggers = build.build_all(cfg.get("logger"))
    trainer = build.build_trainer(cfg.trainer, callbacks, loggers)

    main_process = rank_zero_only.rank == 0
    if main_process:
        print_config_tree(cfg, save_to=out_dir / "config_tree.log")
        if resumed_from:
            print(f"Resuming from {resumed_from}: logs and checkpoints continue in {out_dir}", flush=True)
            keep_csv_logs(loggers, resumed_step)

    if cfg.train:
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(resumed_from) if resumed_from else None)
        except SIGTERMException:  # Lightning's exit is code 0; a scheduler must see that the job was stopped
            from src.callbacks.interruption import exit_code_of_stop

            sys.exit(exit_code_of_stop())
        except RuntimeError as exc:
            if resumed_from and "Error(s) in loading state_dict" in str(exc):
                raise UserError(
                    f"the weights in {resumed_from} do not fit this model (its layers differ from the run's); "
                    "resume with the run's own model settings, or start a new run without ckpt_path."
                ) from exc
            raise
    metrics = scalar_metrics(trainer.callback_metrics)

    if cfg.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("No best checkpoint was saved: testing the current weights.")
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update(scalar_metrics(trainer.callback_metrics))
        if main_process:
            print(one_line(metrics) + f"   (best checkpoint: {best or 'none'}; logs: {out_dir})", flush=True)

    for logger in trainer.loggers:  # TensorBoard's HPARAMS tab: the config beside its final metrics
        if isinstance(logger, TensorBoardLogger):
            # Under their own names: logged as scalars at step 0, they must not join the training curves.
            logger.log_hyperparams(hparams_for_logging(cfg), metrics={f"hp/{k}": v for k, v in metrics.items()})
    if main_process:  # the run record: metrics beside everything needed to understand and repeat them
        record = run_record(build.plain(cfg), composition["overrides"], cfg.seed, str(trainer.strategy.root_device),
                            time.perf_counter() - started)
        write_metrics(out_dir / "metrics.json", metrics, optimized_metric=cfg.get("optimized_metric"),
                      optimized_mode=cfg.get("optimized_mode"), **record)
    return metrics


def command_overrides() -> list[str]:
    """This command's overrides (`key=value` as typed), or none outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def run_config_of_command(cfg: DictConfig) -> tuple[DictConfig, dict[str, Any] | None]:
    """(config, composition) that `python -m src.train <overrides>` runs: `cfg` as Hydra composed it, or
    with `ckpt_path` the checkpoint's run continued with this command's values (src/runs/resume.py)."""
    from hydra.core.hydra_config import HydraConfig

    from src.runs.resume import resumed_run_config

    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    return resumed_run_config(cfg, command_overrides(), choices)


def record_failed_sweep_job(cfg: DictConfig, exc: Exception) -> None:
    """A failing job of a sweep is written down (`failed.json` in its folder) and the sweep goes on."""
    import json

    from src.errors import explain

    user_error = explain(exc)
    message = str(user_error) if user_error else f"{type(exc).__name__}: {exc}"
    if user_error is None:
        log.exception("This sweep job failed; the sweep goes on.")
    print(f"error: {message}", file=sys.stderr, flush=True)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "failed.json").write_text(json.dumps({"status": "failed", "error": message}, indent=2) + "\n")


def quiet_library_noise() -> None:
    """Lightning prints its own INFO lines; stop them appearing twice through Hydra's root logger,
    and drop warnings that do not apply to per-epoch logging."""
    import warnings

    logging.getLogger("lightning.pytorch").propagate = False
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
    # Epoch metrics come from a confusion matrix torchmetrics already summed over processes.
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")


def hparams_for_logging(cfg: DictConfig) -> dict:
    """The choices worth comparing across runs, flattened by the logger."""
    from src.config.build import plain

    keys = ("data", "model", "optimizer", "scheduler", "seed")
    hp = {k: plain(cfg[k]) if isinstance(cfg[k], DictConfig) else cfg[k] for k in keys if k in cfg}
    hp["trainer"] = {k: cfg.trainer.get(k) for k in ("max_epochs", "max_steps", "precision", "accelerator")}
    return hp


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exits_on_user_error
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        metrics = train(*run_config_of_command(cfg))
    except Exception as exc:
        if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        record_failed_sweep_job(cfg, exc)
        # The worst value, so an Optuna study goes on (it stops on NaN); the basic sweeper ignores it.
        return float("-inf") if cfg.get("optimized_mode", "max") == "max" else float("inf")
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()

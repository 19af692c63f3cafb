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
    from lightning.pytorch.utilities import rank_zero_only

    from src.callbacks.confusion_matrix import ConfusionMatrixTable
    from src.callbacks.run_config import RunConfigInCheckpoint
    from src.config import build
    from src.config.schema import validate_config
    from src.config.tree import print_config_tree
    from src.models.steps_per_call import check_setting as check_steps_per_call
    from src.runs.checkpoint import load_checkpoint
    from src.runs.hparams import hparams_for_logging
    from src.runs.resume import COMPOSITION_KEY, check_resumable, composition_of, keep_csv_logs, resolve_resume_path
    from src.runs.trackers import build_loggers, check_trackers_installed, finish_trackers, log_params
    from src.training.tuner import tune

    started = time.perf_counter()
    quiet_library_noise()
    run_config = build.plain(cfg)
    validate_config(run_config)  # typos and wrong types stop here, before any data is loaded
    check_steps_per_call(run_config)
    check_trackers_installed(cfg.get("logger"))  # logger=mlflow / wandb without its package: one sentence
    resumed_from = None
    if cfg.get("ckpt_path"):
        resumed_from, ckpt = load_checkpoint(str(resolve_resume_path(cfg.ckpt_path, cfg)), tensors_on_demand=True)
        check_resumable(run_config, ckpt["run_config"], resumed_from)
        composition = composition or ckpt.get(COMPOSITION_KEY)
        resumed_step = ckpt.get("global_step", "unknown")
        del ckpt
    composition = composition or composition_of(cfg) or {"choices": {}, "overrides": []}
    out_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    cfg = tune(cfg)  # tuner=...: Lightning's batch-size / lr finders on their own objects; cfg with what they found
    # Building checks ranges and shapes (no data is loaded yet), so bad input stops before the run starts.
    datamodule = build.build_datamodule(cfg.data, cfg.get("augment"))
    model = build.build_module(cfg.model, cfg.optimizer, cfg.scheduler)
    callbacks = build.build_all(cfg.get("callbacks"))
    callbacks += [RunConfigInCheckpoint(build.plain(cfg), composition), ConfusionMatrixTable(csv_dir=str(out_dir))]
    loggers = build_loggers(cfg.get("logger"), out_dir)  # MLflow / W&B: the run folder's own tracker run
    trainer = build.build_trainer(cfg.trainer, callbacks, loggers)

    if rank_zero_only.rank == 0:
        print_config_tree(cfg, save_to=out_dir / "config_tree.log")
        if resumed_from:
            print(f"Resuming from {resumed_from}: logs and checkpoints continue in {out_dir}", flush=True)
            keep_csv_logs(loggers, resumed_step)
    params = hparams_for_logging(cfg, composition)  # what runs are compared by (src/runs/hparams.py)
    log_params(loggers, params)
    finished = False
    try:
        metrics = fit_and_test(cfg, trainer, model, datamodule, resumed_from)
        finished = True
    finally:
        finish_trackers(failed=not finished)  # the W&B run of this job ends with it
    record_run(cfg, trainer, metrics, params, composition, time.perf_counter() - started)
    return metrics


def fit_and_test(cfg: DictConfig, trainer: Any, model: Any, datamodule: Any, resumed_from: Path | None
                 ) -> dict[str, float]:
    """Fit (from `resumed_from` when resuming), then test the best checkpoint; the final metrics.
    A signal ends the process here, once the interrupted run's checkpoint is saved."""
    from lightning.pytorch.utilities import rank_zero_only
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from src.callbacks.interruption import end_interrupted_run
    from src.runs.summary import one_line, scalar_metrics

    if cfg.train:
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(resumed_from) if resumed_from else None)
        except SIGTERMException:  # Lightning's exit is code 0; a scheduler must see that the job was stopped
            end_interrupted_run(trainer)
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
        try:
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        except SIGTERMException:  # stopped while testing: a restart resumes from last.ckpt and tests again
            end_interrupted_run(trainer)
        metrics.update(scalar_metrics(trainer.callback_metrics))
        if rank_zero_only.rank == 0:
            print(one_line(metrics) + f"   (best checkpoint: {best or 'none'}; logs: {cfg.paths.output_dir})",
                  flush=True)
    return metrics


def record_run(cfg: DictConfig, trainer: Any, metrics: dict[str, float], params: dict[str, Any],
               composition: dict[str, Any], wall_time_s: float) -> None:
    """TensorBoard's HPARAMS (the parameters beside the final metrics) and `metrics.json`, the run
    record: metrics beside everything needed to understand and repeat them."""
    from lightning.pytorch.utilities import rank_zero_only

    from src.config import build
    from src.runs.record import run_record
    from src.runs.summary import write_metrics
    from src.runs.trackers import log_hparams_table

    log_hparams_table(trainer.loggers, params, metrics)
    if rank_zero_only.rank == 0:
        record = run_record(build.plain(cfg), composition["overrides"], cfg.seed, str(trainer.strategy.root_device),
                            wall_time_s)
        write_metrics(Path(cfg.paths.output_dir) / "metrics.json", metrics,
                      optimized_metric=cfg.get("optimized_metric"), optimized_mode=cfg.get("optimized_mode"), **record)
        (Path(cfg.paths.output_dir) / "failed.json").unlink(missing_ok=True)  # an earlier attempt's, now resumed


def command_overrides() -> list[str]:
    """This command's overrides (`key=value` as typed), or none outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def run_config_of_command(cfg: DictConfig) -> tuple[DictConfig, dict[str, Any] | None]:
    """(config, composition) that `python -m src.train <overrides>` runs: `cfg` as Hydra composed it, or
    with `ckpt_path` the checkpoint's run continued with this command's values (src/runs/resume.py).
    Without `ckpt_path`, a run folder that holds this command's interrupted run (a requeued sweep job,
    or `hydra.run.dir=...` named again) continues from its `interrupted.ckpt` or `last.ckpt`."""
    from hydra.core.hydra_config import HydraConfig

    from src.runs.resume import checkpoint_to_resume, resumed_run_config

    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    restarting = False
    if not cfg.get("ckpt_path") and HydraConfig.initialized():
        earlier = checkpoint_to_resume(cfg.paths.output_dir)
        if earlier is not None:
            cfg.ckpt_path, restarting = str(earlier), True
    return resumed_run_config(cfg, command_overrides(), choices, restarting=restarting)


def finished_earlier(cfg: DictConfig) -> dict[str, float] | None:
    """The recorded metrics when this command's run already finished in the folder it writes into
    (a sweep job started again), said in one line; None when there is a run to train."""
    from hydra.core.hydra_config import HydraConfig

    from src.runs.resume import finished_run
    from src.runs.summary import one_line

    if cfg.get("ckpt_path") or not HydraConfig.initialized():
        return None
    record = finished_run(cfg.paths.output_dir, command_overrides())
    if record is None:
        return None
    metrics = record["metrics"]
    shown = one_line(metrics) if any(k.startswith("test/") for k in metrics) else one_line(metrics, "val/")
    print(f"{cfg.paths.output_dir} holds this run finished already, so it is not trained again: {shown}", flush=True)
    return metrics


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


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exits_on_user_error
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from src.runs.resume import AnotherRunInFolder

    try:
        metrics = finished_earlier(cfg)
        if metrics is None:
            metrics = train(*run_config_of_command(cfg))
    except Exception as exc:
        if isinstance(exc, AnotherRunInFolder) or not HydraConfig.initialized() \
                or HydraConfig.get().mode != RunMode.MULTIRUN:
            raise  # (a folder of another run gets no failed.json)
        record_failed_sweep_job(cfg, exc)
        # The worst value, so an Optuna study goes on (it stops on NaN); the basic sweeper ignores it.
        return float("-inf") if cfg.get("optimized_mode", "max") == "max" else float("inf")
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()

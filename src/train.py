"""`python -m src.train`: compose the config, build data, model, callbacks, loggers and trainer,
fit, test with the best checkpoint, and return the optimised metric (for Hydra sweepers).

    python -m src.train                                  # MLP on the 8x8 digits, offline
    python -m src.train data=iris model=softmax_regression
    python -m src.train -m optimizer.lr=0.1,0.01 trainer.max_epochs=1
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import src.config.resolvers  # noqa: F401  (registers ${len:...})
from src.config.choices import check_command_line
from src.errors import exits_on_user_error

NO_COMPOSITION = {"choices": {}, "overrides": []}


def train(cfg: DictConfig, composition: dict[str, Any] | None = None, resume: Any = None) -> dict[str, float]:
    """Run one training job with `cfg` as given; return its final metrics (validation and test). With
    `cfg.ckpt_path` it continues that checkpoint (`resume`: already read, src/runs/resume.py).
    `composition`: the run's group choices and overrides to record (default: the Hydra job's)."""
    # Imported here: a command Hydra refuses (a misspelt override, --help) ends before torch and Lightning load.
    import lightning as L
    from lightning.pytorch.utilities import rank_zero_only

    from src import builders
    from src.config.names import plain
    from src.config.schema import validate_config
    from src.config.tree import print_config_tree
    from src.runs.console import quiet_library_noise
    from src.runs.loggers import build_loggers, end_with_job, hparams_for_logging, log_hparams_table, log_params
    from src.runs.record import completed_record, composition_of

    started = time.perf_counter()
    quiet_library_noise()
    run_config = plain(cfg)
    validate_config(run_config)  # typos and wrong types stop here, before any data is loaded
    steps_per_call = builders.steps_per_call(run_config)
    if cfg.get("ckpt_path"):  # the same kind of model on the same data (src/runs/resume.py)
        from src.runs.resume import checked_resume_point
        resume = checked_resume_point(cfg, run_config, resume)
    composition = composition or (resume and resume.composition) or composition_of(cfg) or NO_COMPOSITION
    out_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    if cfg.get("tuner"):  # Lightning's batch-size / lr finders on their own objects; cfg with what they found
        from src.tuning.finders import tune
        cfg = tune(cfg)
        run_config = plain(cfg)  # with what the finders found
    # Building checks ranges and shapes (no data is loaded yet), so bad input stops before the run starts.
    datamodule = builders.build_datamodule(cfg.data, cfg.get("augment"), steps_per_call)
    model = builders.build_module(cfg.model, cfg.optimizer, cfg.scheduler, steps_per_call, cfg.get("distill"))
    if resume is not None:
        resume.check_weights_fit(model)
    callbacks = builders.build_all(cfg.get("callbacks"))
    loggers = build_loggers(cfg.get("logger"), out_dir)  # MLflow / W&B: the run folder's own tracker run
    trainer = builders.build_trainer(cfg.trainer, callbacks, loggers,
                                  {"run_config": run_config, "run_composition": composition})

    if rank_zero_only.rank == 0:
        print_config_tree(cfg, save_to=out_dir / "config_tree.log")
        if resume is not None:
            resume.continue_logs(loggers, out_dir)
    params = hparams_for_logging(cfg, composition)  # what runs are compared by (src/runs/loggers.py)
    log_params(loggers, params)
    with end_with_job():  # a W&B run of this job ends with it
        metrics = fit_and_test(cfg, trainer, model, datamodule, resume.path if resume else None)
    log_hparams_table(trainer.loggers, params, metrics)  # TensorBoard HPARAMS: parameters and final metrics
    if rank_zero_only.rank == 0:
        completed_record(metrics, run_config, composition["overrides"], str(trainer.strategy.root_device),
                         time.perf_counter() - started).write(out_dir)
    return metrics


def fit_and_test(cfg: DictConfig, trainer: Any, model: Any, datamodule: Any, resumed: Path | None) -> dict[str, float]:
    """Fit (continuing `resumed`), test the best checkpoint; the final metrics. A signal ends the process here."""
    from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn  # (see train's imports)
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from src.runs.console import one_line, scalar_metrics

    try:  # Lightning exits with code 0 on SIGTERM; a scheduler must see that the job was stopped
        if cfg.train:
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(resumed) if resumed else None)
        metrics = scalar_metrics(trainer.callback_metrics)
        if cfg.test:  # (stopped while testing: a restart resumes from last.ckpt and tests again)
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            if not best:
                rank_zero_warn("No best checkpoint was saved: testing the current weights.")
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
            metrics.update(scalar_metrics(trainer.callback_metrics))
            if rank_zero_only.rank == 0:
                print(one_line(metrics) + f"   (best checkpoint: {best or 'none'}; logs: {cfg.paths.output_dir})",
                      flush=True)
    except SIGTERMException:
        from src.callbacks.interruption import end_interrupted_run
        end_interrupted_run(trainer)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exits_on_user_error
def main(cfg: DictConfig) -> float | None:
    from src.runs.record import job_may_continue  # (see train's imports)

    if not job_may_continue(cfg):  # a new run: no checkpoint to continue, no sweep job started again
        return train(cfg).get(cfg.get("optimized_metric"))
    from src.runs.sweep_job import run_job
    return run_job(cfg, train)


if __name__ == "__main__":
    exits_on_user_error(check_command_line)(sys.argv[1:])
    main()

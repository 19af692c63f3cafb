"""The job Hydra started, before and after `train`, when it may continue an earlier one (a checkpoint
named, a sweep job, a folder with an earlier start: `src.runs.record.job_may_continue`): which run it
trains (decided once), whether its folder holds that run finished already, and how a sweep job that
failed is written down. `run_job(cfg, train)` does all of it.

- `job_to_run(cfg)`: (config, composition, resume point) of `python -m src.train <overrides>`: `cfg` as
  Hydra composed it, or with `ckpt_path` the checkpoint's run continued with this command's values
  (src/runs/resume.py). Without `ckpt_path`, a run folder that holds this command's interrupted run
  (a requeued sweep job, or `hydra.run.dir=...` named again) continues from its checkpoint.
- `finished_earlier(cfg)`: the metrics of this command's run when its folder holds it finished.
- `sweep_job_failure(exc)`: what a failed sweep job records (`failed.json`) before the sweep goes on:
  the one sentence of a user error, or the device running out of memory; None for anything else, a
  fault in the code, which stops the sweep with its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from src.errors import explain
from src.runs.console import one_line
from src.runs.record import failed_record
from src.runs.resume import (
    AnotherRunInFolder,
    ResumePoint,
    checkpoint_to_resume,
    finished_run,
    read_resume_point,
    resumed_run_config,
)


def command_overrides() -> list[str]:
    """This command's overrides (`key=value` as typed), or none outside a Hydra run."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def job_to_run(cfg: DictConfig) -> tuple[DictConfig, dict[str, Any] | None, ResumePoint | None]:
    """(config, composition, resume point) of the run this command trains; the checkpoint it resumes
    (if any) is read here, once."""
    launched = HydraConfig.initialized()
    choices = dict(HydraConfig.get().runtime.choices) if launched else {}
    restarting = False
    if not cfg.get("ckpt_path") and launched:
        earlier = checkpoint_to_resume(cfg.paths.output_dir)
        if earlier is not None:
            cfg.ckpt_path, restarting = str(earlier), True
    point = read_resume_point(cfg)
    config, composition = resumed_run_config(cfg, command_overrides(), choices, restarting=restarting, point=point)
    return config, composition, point


def finished_earlier(cfg: DictConfig) -> dict[str, float] | None:
    """The recorded metrics when this command's run already finished in the folder it writes into
    (a sweep job started again), said in one line; None when there is a run to train."""
    if cfg.get("ckpt_path") or not HydraConfig.initialized():
        return None
    record = finished_run(cfg.paths.output_dir, command_overrides())
    if record is None:
        return None
    metrics = record.metrics
    shown = one_line(metrics) if any(k.startswith("test/") for k in metrics) else one_line(metrics, "val/")
    print(f"{cfg.paths.output_dir} holds this run finished already, so it is not trained again: {shown}", flush=True)
    return metrics


def sweep_job_failure(exc: BaseException) -> str | None:
    """What a failed job of a sweep records (see `recorded_error`); None outside a sweep."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return recorded_error(exc)


def recorded_error(exc: BaseException) -> str | None:
    """The error a job records before its sweep goes on: a user error's sentence, or running out of
    memory (a setting too large for the device). None for a folder that holds another run (nothing
    in it is touched) and for faults in the code, which stop the sweep with their traceback."""
    user_error = explain(exc)
    if user_error is not None:
        return None if isinstance(user_error, AnotherRunInFolder) else str(user_error)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, torch.OutOfMemoryError):
            first_line = (str(seen).strip().splitlines() or ["no details"])[0]
            return f"out of memory ({first_line}); lower data.batch_size or the model's size for this job."
        seen = seen.__cause__ or seen.__context__
    return None


def record_failed_job(cfg: DictConfig, error: str) -> float:
    """`failed.json` in the job's folder, the error on stderr; the worst value of the optimised metric,
    so that an Optuna study goes on (it stops on NaN); the basic sweeper ignores it."""
    print(f"error: {error}", file=sys.stderr, flush=True)
    failed_record(error).write(cfg.paths.output_dir)
    return float("-inf") if cfg.get("optimized_mode", "max") == "max" else float("inf")


def run_job(cfg: DictConfig, train: Callable[..., dict[str, float]]) -> float | None:
    """The job's optimised metric: from its finished run, or `train` on the run `job_to_run` decides; a sweep
    job's user error or out-of-memory is recorded (`failed.json`) and the sweep goes on."""
    try:
        metrics = finished_earlier(cfg)
        if metrics is None:
            metrics = train(*job_to_run(cfg))
    except Exception as exc:
        error = sweep_job_failure(exc)
        if error is None:
            raise
        return record_failed_job(cfg, error)
    return metrics.get(cfg.get("optimized_metric"))

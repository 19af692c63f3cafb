"""A sweep's folder read back: one `Run` per job folder (`0/`, `1/`, ...), with the overrides it was
launched with (`.hydra/overrides.yaml`), its optimised metric (`.hydra/config.yaml`) and its record
(`metrics.json`, or `failed.json` for a job that failed; src/runs/record.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from src.errors import require
from src.runs.record import read_record

# What an Optuna search gives each job to reach its trial (src/sweeps/search.py): not the job's settings.
SEARCH_PLUMBING = "+callbacks.optuna_trial."
PRUNED_FILE = "pruned.json"  # a pruned job's folder: when and why (src/callbacks/optuna_trial.py)


@dataclass
class Run:
    """One job of a sweep."""

    job: str
    path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    optimized_metric: str | None = None
    optimized_mode: str = "max"
    failed: bool = False
    pruned: bool = False  # an Optuna search's job its pruner stopped early (its `pruned.json`)
    error: str | None = None  # the failed job's error (its failed.json)
    wall_time_s: float | None = None  # from the run record
    device: str | None = None

    @property
    def status(self) -> str:
        if not self.failed:
            return "pruned" if self.pruned else "ok"
        return f"failed: {self.error}" if self.error else "failed (no metrics.json)"

    def score(self) -> float | None:
        value = self.metrics.get(self.optimized_metric) if self.optimized_metric else None
        return None if value is None or math.isnan(value) else float(value)


def _job_key(path: Path) -> tuple[int, int | str]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def collect_runs(sweep_dir: str | Path) -> list[Run]:
    """Every job folder of `sweep_dir` (a folder with `.hydra/overrides.yaml` or `metrics.json`)."""
    root = Path(sweep_dir).expanduser()
    require(root.is_dir(), f"there is no folder at {root}; pass a multirun folder, e.g. logs/train/multiruns/<stamp>.")
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=_job_key)
    jobs = [p for p in folders if _is_job(p)]
    # A folder holding one run per classifier of one command (src.baseline) lists each of them.
    jobs += [q for p in folders if not _is_job(p) for q in sorted(p.iterdir(), key=_job_key)
             if q.is_dir() and _is_job(q)]
    if not jobs and _is_job(root):  # a single run's folder
        jobs = [root]
    require(
        bool(jobs),
        f"{root} holds no runs (job folders with .hydra/overrides.yaml or metrics.json); pass a multirun "
        "folder such as logs/train/multiruns/<stamp>.",
    )
    runs = [read_run(job) for job in jobs]
    for run in runs:  # a nested run is named by its path below the folder: baselines/logistic_regression
        run.job = run.path.relative_to(root).as_posix() if run.path != root else run.job
    return runs


def _is_job(path: Path) -> bool:
    return any((path / name).is_file() for name in (".hydra/overrides.yaml", "metrics.json", "failed.json"))


def read_run(job: Path) -> Run:
    """The job in folder `job`: a job without a finished record is failed (with its error when recorded)."""
    run = Run(job=job.name, path=job)
    overrides_file = job / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        for item in yaml.safe_load(overrides_file.read_text()) or []:
            key, _, value = str(item).partition("=")
            if not key.startswith(SEARCH_PLUMBING):
                run.overrides[key] = value
    config_file = job / ".hydra" / "config.yaml"
    config = {}
    if config_file.is_file():
        try:
            config = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError:
            config = {}
    run.optimized_mode = str(config.get("optimized_mode") or "max").lower()
    run.optimized_metric = config.get("optimized_metric")
    run.pruned = (job / PRUNED_FILE).is_file()
    record = read_record(job)
    if record is not None and record.finished:
        run.metrics = record.metrics
        run.optimized_metric = record.optimized_metric or run.optimized_metric
        run.optimized_mode = str(record.optimized_mode or run.optimized_mode).lower()
        run.wall_time_s, run.device = record.wall_time_s, record.device
    else:
        run.failed = True
        run.error = " ".join(str(record.error).split()) or None if record is not None and record.error else None
    return run

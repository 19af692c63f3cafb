"""A run's record: its final metrics beside what is needed to understand and repeat them (code version,
packages, device, time, configuration), written into its folder as `metrics.json`; a run that failed
leaves `failed.json` with its error instead. `RunRecord.write` is the one writer and `read_record` the
one reader of both files (reports, reproduction and resumption read them through it)."""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

CODE_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "omegaconf", "numpy")
METRICS_FILE, FAILED_FILE = "metrics.json", "failed.json"
COMPOSITION_KEY = "run_composition"  # checkpoint[...] = {"choices": {group: choice}, "overrides": [...]}


@dataclass
class RunRecord:
    """What `metrics.json` (status "completed") or `failed.json` (status "failed", with `error`) holds;
    `path` is the file it was read from (None before it is written)."""

    metrics: dict[str, float] = field(default_factory=dict)
    optimized_metric: str | None = None
    optimized_mode: str | None = None
    status: str = "completed"
    error: str | None = None
    overrides: list[str] | None = None
    seed: int | None = None
    device: str | None = None
    host: str | None = None
    wall_time_s: float | None = None
    git: dict[str, Any] | None = None
    versions: dict[str, str | None] | None = None
    config: dict[str, Any] | None = None
    ckpt_path: str | None = None  # an evaluation's record: the checkpoint it evaluated
    temperature: float | None = None  # an evaluation of a src.calibrate checkpoint: the temperature it applied
    path: Path | None = field(default=None, compare=False)

    @property
    def finished(self) -> bool:
        return self.status == "completed"

    def write(self, folder: str | Path) -> Path:
        """`metrics.json` (replacing an earlier attempt's `failed.json`) or `failed.json` in `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        fields = {k: v for k, v in asdict(self).items() if v is not None and k != "path"}
        self.path = folder / (METRICS_FILE if self.finished else FAILED_FILE)
        self.path.write_text(json.dumps(fields, indent=2) + "\n")
        if self.finished:
            (folder / FAILED_FILE).unlink(missing_ok=True)  # an earlier attempt's, now resumed to the end
        return self.path


def completed_record(metrics: dict[str, float], config: dict[str, Any], overrides: list[str], device: str,
                     wall_time_s: float) -> RunRecord:
    """The record of a run that finished with `metrics`, as composed from `config` and `overrides`."""
    return RunRecord(
        metrics=dict(metrics), optimized_metric=config.get("optimized_metric"),
        optimized_mode=config.get("optimized_mode"), overrides=list(overrides), seed=config.get("seed"),
        device=device, host=platform.node(), wall_time_s=round(wall_time_s, 3), git=git_state(),
        versions=package_versions(), config=config,
    )


def failed_record(error: str) -> RunRecord:
    return RunRecord(status="failed", error=error)


def read_record(folder: str | Path) -> RunRecord | None:
    """The record in a run folder: its `metrics.json` when readable, else its `failed.json`; None when
    it has neither (a run still going, or killed), or only files cut short while they were written."""
    for name in (METRICS_FILE, FAILED_FILE):
        path = Path(folder) / name
        try:
            content = json.loads(path.read_text())
            if name == METRICS_FILE and "metrics" not in content:
                continue
            content["metrics"] = {str(k): float(v) for k, v in (content.get("metrics") or {}).items()}
            known = {k: v for k, v in content.items() if k in RunRecord.__dataclass_fields__ and k != "path"}
            record = RunRecord(**known, path=path)
        except (OSError, ValueError, TypeError, AttributeError):
            continue
        if record.finished == (name == METRICS_FILE):
            return record
    return None


def git_state(root: Path = CODE_ROOT) -> dict[str, Any]:
    """{"commit": sha or None, "dirty": tracked files changed since that commit (None outside git)}."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def composition_of(cfg: DictConfig) -> dict[str, Any] | None:
    """{"choices", "overrides"} of the Hydra job that composed `cfg`, or None when Hydra's run-time
    config describes another job (a config composed earlier in the same process) or none."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    try:
        same_job = str(Path(str(cfg.paths.output_dir)).absolute()) == str(Path(hydra_cfg.runtime.output_dir).absolute())
    except (OmegaConfBaseException, TypeError):  # no output folder, or one that cannot be resolved: not Hydra's run
        return None
    if not same_job:
        return None
    choices = {str(k): (None if v is None else str(v)) for k, v in hydra_cfg.runtime.choices.items()
               if not str(k).startswith("hydra")}
    return {"choices": choices, "overrides": [str(o) for o in hydra_cfg.overrides.task]}


def job_may_continue(cfg: DictConfig) -> bool:
    """Whether this job may continue or repeat an earlier one (src/runs/sweep_job.py decides): it names a
    checkpoint, it is a sweep job (whose failures are recorded), or its folder holds an earlier start."""
    if cfg.get("ckpt_path"):
        return True
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return True
    out = Path(str(cfg.paths.output_dir))
    return (out / "checkpoints").is_dir() or (out / METRICS_FILE).exists() or (out / FAILED_FILE).exists()

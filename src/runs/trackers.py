"""Experiment trackers beside TensorBoard: MLflow (`logger=mlflow`) and Weights & Biases (`logger=wandb`).

- `run_identity()`: the name, group and tags of the Hydra job running now (a sweep job is
  `<sweep folder name>/<job number>`, grouped by its sweep); the logger configs read them through
  `${tracker:name}`, `${tracker:group}`, `${tracker:tags}`, so a resumed run keeps its own.
- `build_loggers(group, run_dir)`: the logger group's loggers. An MLflow or W&B logger continues the
  tracker run that an earlier start of the same run folder began (the ids are kept in
  `<run>/tracker_runs.json`), so a requeued or resumed job stays one MLflow run / one W&B run. A
  tracker whose package is not installed ends in one sentence naming the extra to install.
- `log_mlflow_params`: MLflow keeps a parameter's first value, so a resumed run says which it changed;
  `finish_trackers`: end the W&B run of this process, so that the next job of a sweep in the same
  process gets its own. This file loads only when a logger config names MLflow or W&B
  (src/runs/loggers.py builds the loggers).
"""

from __future__ import annotations

import importlib.util
import json
import netrc
import os
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import MLFlowLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import OmegaConf

from src.errors import UserError

RUN_IDS_FILE = "tracker_runs.json"  # {"mlflow": run id, "wandb": run id} of a run folder
EXTRAS = {"mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}  # tracker: (module, pyproject extra)
# Set unless the user's environment says otherwise: no usage report leaves the machine, and MLflow's
# local file store (maintenance mode since MLflow 3.7, refused without this) stays usable.
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true"}
MLFLOW_FILE_STORE_ENV = {"MLFLOW_ALLOW_FILE_STORE": "true"}


# --- who the run is ----------------------------------------------------------------------------------
def run_identity() -> dict[str, Any]:
    """{"name", "group", "tags"} of the Hydra job running now: a sweep job is named
    `<sweep folder name>/<job number>` and grouped by its sweep folder's name; a single run is named
    after its folder and has no group. Tags: the run folder, and the sweep and job number."""
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    output_dir = OmegaConf.select(hydra_cfg, "runtime.output_dir", default=None) if hydra_cfg else None
    if output_dir is None:  # no job (e.g. `--cfg job` prints the config before any is set up)
        return {"name": None, "group": None, "tags": {}}
    run_dir = Path(str(output_dir))
    tags = {"run_dir": str(run_dir)}
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep, job = Path(str(hydra_cfg.sweep.dir)).name, str(hydra_cfg.job.num)
        return {"name": f"{sweep}/{job}", "group": sweep, "tags": {**tags, "sweep": sweep, "job": job}}
    return {"name": run_dir.name, "group": None, "tags": tags}


def wandb_offline() -> bool:
    """W&B logs offline (`wandb sync` uploads later) unless an API key is configured: WANDB_API_KEY,
    or a `wandb login` entry in ~/.netrc for WANDB_BASE_URL's host; WANDB_MODE, when set, decides."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode:
        return mode != "online"
    if os.environ.get("WANDB_API_KEY"):
        return False
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is None
    except (OSError, netrc.NetrcParseError):
        return True


# --- building ------------------------------------------------------------------------------------------
def tracker_of(target: type) -> str | None:
    """"mlflow" or "wandb" for Lightning's MLflow and W&B loggers (and their subclasses), else None."""
    if issubclass(target, MLFlowLogger):
        return "mlflow"
    return "wandb" if issubclass(target, WandbLogger) else None


def require_installed(tracker: str) -> None:
    module, extra = EXTRAS[tracker]
    if importlib.util.find_spec(module) is None:
        raise UserError(f"logger={tracker} needs the {module} package, which is not installed: "
                        f"pip install '.[{extra}]' (or choose another logger, e.g. logger=tensorboard).")


def check_trackers_installed(group: Any) -> None:
    """Before anything runs: every tracker the logger group names is installed."""
    for node in (group or {}).values():
        if node is not None and "_target_" in node and (tracker := tracker_of(get_class(node["_target_"]))):
            require_installed(tracker)


def recorded_ids(run_dir: Path) -> dict[str, str]:
    try:
        ids = json.loads((run_dir / RUN_IDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in ids.items()} if isinstance(ids, dict) else {}


def record_id(run_dir: Path, tracker: str, run_id: str) -> None:
    ids = recorded_ids(run_dir)
    if ids.get(tracker) != run_id:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_IDS_FILE).write_text(json.dumps({**ids, tracker: run_id}, indent=2) + "\n")


def build_loggers(group: Any, run_dir: str | Path) -> list[Any]:
    """Instantiate every entry of the logger group (`null` entries are switched off); MLflow and W&B
    loggers continue the tracker run of an earlier start of `run_dir` (see the module's docstring)."""
    run_dir, main_process = Path(run_dir), rank_zero_only.rank == 0
    loggers = []
    for node in (group or {}).values():
        if node is None or "_target_" not in node:
            continue
        tracker, extra = tracker_of(get_class(node["_target_"])), {}
        if tracker:
            require_installed(tracker)
        earlier = recorded_ids(run_dir).get(tracker or "")
        if tracker == "mlflow":
            for key, value in {**MLFLOW_ENV, **(MLFLOW_FILE_STORE_ENV if is_file_store(node) else {})}.items():
                os.environ.setdefault(key, value)
            if earlier and not node.get("run_id"):
                extra["run_id"] = earlier
        elif tracker == "wandb" and not node.get("id"):
            extra["id"] = earlier or uuid.uuid4().hex[:16]
            if main_process:
                record_id(run_dir, "wandb", extra["id"])
        logger = instantiate(node, **extra)
        if tracker == "mlflow" and main_process:
            record_id(run_dir, "mlflow", logger.run_id)  # creates the MLflow run now: it shows while training
        loggers.append(logger)
    return loggers


def is_file_store(node: Any) -> bool:
    uri = str(node.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or "file:")
    return uri.startswith("file:") or ("://" not in uri and not uri.startswith("databricks"))  # a plain path too


def log_mlflow_params(logger: Any, params: dict[str, Any]) -> None:
    if rank_zero_only.rank != 0:
        return
    logged = logger.experiment.get_run(logger.run_id).data.params
    changed = sorted(k for k, v in params.items() if k in logged and not str(v).startswith(logged[k]))
    if changed:
        print(f"MLflow keeps a run's first parameter values, so run {logger.run_id} still shows "
              + ", ".join(f"{k}={logged[k]} (now {params[k]})" for k in changed), flush=True)
    new = {k: v for k, v in params.items() if k not in logged}
    if new:
        logger.log_hyperparams(new)


def finish_trackers(failed: bool = False) -> None:
    """End this process's W&B run (Lightning's WandbLogger leaves it open, and a later job of a sweep
    run in the same process would log into it)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1 if failed else 0)

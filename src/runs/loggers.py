"""A run's loggers and what runs are compared by (TensorBoard's HPARAMS columns, the MLflow / W&B parameters):
`build_loggers`, `log_params` (at the start), `log_hparams_table` (with the final metrics).

`hparams_for_logging(cfg, composition)` is one flat `{name: value}`: the config group choices, the usual
hyper-parameters (`HYPERPARAMETERS`, where the config has them; the fold of a cross-validation), and every value
the command's overrides set; never a path, a `_target_`, nor the settings of callbacks, loggers and Hydra. The
names are the dotted keys a user types (`optimizer.lr`), so a column reads as its override.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from src.config.names import override_key

CHOICE_GROUPS = ("model", "data", "optimizer", "scheduler", "augment", "trainer", "experiment")
HYPERPARAMETERS = (
    "seed", "optimizer.lr", "optimizer.weight_decay", "optimizer.momentum", "data.batch_size", "trainer.max_epochs",
    "trainer.max_steps", "model.net.dropout", "model.net.hidden_sizes", "model.net.hidden", "model.net.widths",
    "model.net.classifier_width",
)
# Overrides under these keys describe where and how a run is recorded, not what it trains.
NOT_HYPERPARAMETERS = ("callbacks", "logger", "paths", "hydra", "debug", "tags", "task_name", "ckpt_path",
                       "optimized_metric", "optimized_mode", "train", "test")
PATH_SUFFIXES = ("_dir", "_file", "_path", "_root", "_uri")
PATH_NAMES = ("root", "dir", "file", "path", "uri", "inputs")


def is_hyperparameter_key(key: str) -> bool:
    """Whether an overridden key is a hyper-parameter (not a path, a target, or a recording setting)."""
    first, leaf = key.split(".", 1)[0], key.rsplit(".", 1)[-1]
    if first in NOT_HYPERPARAMETERS or (leaf.startswith("_") and leaf.endswith("_")):
        return False
    return not leaf.endswith(PATH_SUFFIXES) and leaf not in PATH_NAMES


def loggable(value: Any) -> Any:
    """A value every logger takes: numbers, strings and booleans as they are, anything else as text."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def hparams_for_logging(cfg: DictConfig, composition: dict[str, Any] | None = None) -> dict[str, Any]:
    """The choices worth comparing across runs, flat (see the module's docstring)."""
    composition = composition or {}
    choices = composition.get("choices") or {}
    hp: dict[str, Any] = {group: str(choices[group]) for group in CHOICE_GROUPS
                          if choices.get(group) not in (None, "null")}
    keys = [k for k in HYPERPARAMETERS if k != "trainer.max_steps" or OmegaConf.select(cfg, k, default=-1) != -1]
    if OmegaConf.select(cfg, "data.num_folds", default=None):
        keys.append("data.fold")
    for override in composition.get("overrides") or []:
        key = override_key(str(override))
        if not str(override).startswith("~") and "=" in str(override) and is_hyperparameter_key(key) \
                and key not in choices and "/" not in key:
            keys.append(key)
    for key in dict.fromkeys(keys):
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is not None and not OmegaConf.is_dict(value):
            hp[key] = loggable(value)
    return hp


def final_metrics_for_logging(metrics: dict[str, float]) -> dict[str, float]:
    """The final metrics beside the hyper-parameters, under `hp/` (logged as scalars at step 0 they
    must not join the training curves); counters such as `epoch` and `step` are no metric."""
    return {f"hp/{k}": float(v) for k, v in metrics.items() if k.rsplit("/", 1)[-1] not in ("epoch", "step")}


def build_loggers(group: Any, run_dir: str | Path) -> list[Any]:
    """Every entry of the logger group (`null` entries are off); MLflow and W&B through src/runs/trackers.py,
    which continues the tracker run of an earlier start of the same run folder."""
    nodes = [node for node in (group or {}).values() if node is not None and "_target_" in node]
    if any(issubclass(get_class(node["_target_"]), (MLFlowLogger, WandbLogger)) for node in nodes):
        from src.runs import trackers
        return trackers.build_loggers(group, run_dir)
    return [instantiate(node) for node in nodes]


def log_params(loggers: list[Any], params: dict[str, Any]) -> None:
    """The run's parameters, at its start, to every logger but TensorBoard (whose HPARAMS table needs
    the final metrics: `log_hparams_table`); MLflow keeps a parameter's first value (src/runs/trackers.py)."""
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            from src.runs.trackers import log_mlflow_params
            log_mlflow_params(logger, params)
        elif not isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params)


def log_hparams_table(loggers: list[Any], params: dict[str, Any], metrics: dict[str, float]) -> None:
    """TensorBoard's HPARAMS: the run's parameters beside its final metrics (`hp/...`)."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics=final_metrics_for_logging(metrics))


@contextmanager
def end_with_job() -> Iterator[None]:
    """A W&B run of this job ends with the block (marked failed when it raises)."""
    failed = True
    try:
        yield
        failed = False
    finally:
        if "wandb" in sys.modules:  # (imported by a W&B logger only)
            from src.runs.trackers import finish_trackers
            finish_trackers(failed=failed)

"""Names that several modules share: where the configs are, their groups, the config keys the project's own
code reads instead of passing them to a `_target_`; and `plain`, a config node as plain values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[2]  # the project folder
CONF = ROOT / "conf"  # Hydra's config folder of every entry point

# Every config group a command can choose (`model=lenet`) or reach into (`callbacks/...`): the folders
# of conf/, `hydra` among them (Hydra lists list-valued groups and its own among no run's choices).
CONFIG_GROUPS = tuple(sorted(p.name for p in CONF.iterdir() if p.is_dir()))
# The groups whose `_target_` nodes a run builds, so the schema checks them before any data is loaded.
BUILT_GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger", "augment")

# The project's Optuna sweeper (hydra/sweeper=optuna), as the composed `hydra.sweeper._target_` names it.
SWEEPER_TARGET = "hydra_plugins.classify_optuna_sweeper.optuna_sweeper.OptunaSweeper"
PARAMS = "hydra.sweeper.params."  # its search space: `hydra.sweeper.params.<config key>: <search expression>`
# Keys of the optimizer and scheduler configs read by ClassificationModule and src/models/schedulers.py.
OPTIMIZER_OWN_KEYS = ("decay_bias_and_norm", "backbone_lr_scale")
SCHEDULER_OWN_KEYS = ("interval", "monitor", "warmup_steps", "warmup_epochs", "warmup_start_factor")
# Class-imbalance keys of the data and model configs: src/builders.py passes them only to the variant it loads.
DATA_OWN_KEYS, MODEL_OWN_KEYS = ("imbalance_ratio", "sampler"), ("class_weights", "class_weights_beta", "focal_gamma")


def override_key(override: str) -> str:
    """The config key a command-line override names: `+a.b=1`, `~a.b`, `a.b=2` -> `a.b`."""
    return override.split("=", 1)[0].lstrip("+~")


def plain(cfg: DictConfig | dict | None) -> dict[str, Any]:
    """A resolved, plain-Python copy of a config node (what hyper-parameters and checkpoints store)."""
    if cfg is None:
        return {}
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)

"""Names that several modules share: where the configs are, their groups, and the config keys the
project's own code reads instead of passing them to a `_target_`."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project folder
CONF = ROOT / "conf"  # Hydra's config folder of every entry point

# Every config group a command can choose (`model=lenet`) or reach into (`callbacks/...`): the folders
# of conf/, `hydra` among them (Hydra lists list-valued groups and its own among no run's choices).
CONFIG_GROUPS = tuple(sorted(p.name for p in CONF.iterdir() if p.is_dir()))
# The groups whose `_target_` nodes a run builds, so the schema checks them before any data is loaded.
BUILT_GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger", "augment")


def override_key(override: str) -> str:
    """The config key a command-line override names: `+a.b=1`, `~a.b`, `a.b=2` -> `a.b`."""
    return override.split("=", 1)[0].lstrip("+~")

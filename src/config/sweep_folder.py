"""A sweep's folder, decided once in the launching process (`pin_sweep_folder`, called by Hydra's callback
`src.config.hydra_callbacks.RunFolders` when a sweep starts).

Every launcher composes each job's config afresh from the sweep's Hydra overrides plus the job's own
(`load_sweep_config`), in this process (basic launcher) or in another one (joblib workers, submitit jobs, which
unpickle the sweep's config on a cluster node). The folder name holds `${now:...}` and `${pid:}`, which a job
started in another process would resolve again; the folder resolved here is put among those Hydra overrides, so
each job composes the same absolute folder, also when it is requeued. A folder that already holds a sweep
(`multirun.yaml`, named with `hydra.sweep.dir=...`) is continued only by the same command: its finished jobs are
kept and its interrupted ones resume (src/runs/resume.py); a different sweep there is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf, flag_override
from omegaconf.errors import OmegaConfBaseException

from src.config.names import override_key
from src.errors import exit_with_error as stop

SWEEP_DIR_KEY = "hydra.sweep.dir"


def quoted_override_value(value: str) -> str:
    """`value` as a quoted Hydra override value that parses back to exactly `value` (any path)."""
    value = re.sub(r"(\\+)('|$)", lambda m: m.group(1) * 2 + m.group(2), value)  # backslashes before a quote
    return "'" + value.replace("'", "\\'") + "'"


def pin_sweep_folder(config: DictConfig) -> None:
    """Resolve `hydra.sweep.dir` once and pin it among the sweep's Hydra overrides (see the module's docstring)."""
    folder = str(Path(str(config.hydra.sweep.dir)).expanduser().absolute())
    refuse_another_sweep(Path(folder), config)
    with flag_override(config.hydra, ["readonly", "struct"], [False, False]):
        config.hydra.sweep.dir = folder
        kept = [o for o in config.hydra.overrides.hydra if override_key(str(o)) != SWEEP_DIR_KEY]
        config.hydra.overrides.hydra = [*kept, f"{SWEEP_DIR_KEY}={quoted_override_value(folder)}"]

def refuse_another_sweep(folder: Path, config: DictConfig) -> None:
    earlier = folder / "multirun.yaml"
    if not earlier.is_file():
        return
    try:
        theirs = [str(o) for o in OmegaConf.load(earlier).hydra.overrides.task]
    except (OSError, yaml.YAMLError, OmegaConfBaseException, AttributeError):  # unreadable or not Hydra's
        return
    ours = [str(o) for o in config.hydra.overrides.task]
    if sorted(theirs) != sorted(ours):
        study = config.hydra.sweeper.get("study_name")  # an Optuna search's folder is named after its study
        new_folder = f"name another study with hydra.sweeper.study_name=NAME (not {study})" if study \
            else f"choose a new folder for this one (drop {SWEEP_DIR_KEY})"
        stop(f"{folder} already holds a sweep of other overrides ({' '.join(theirs) or 'none'}); run that "
             f"sweep's own command to continue it, or {new_folder}.")

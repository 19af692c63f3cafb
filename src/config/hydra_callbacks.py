"""Hydra callbacks: what must be settled in the launching process, before any job runs.

- `OneSweepFolder`: a sweep's folder is decided once, here, so that every job of it writes into
  `<sweep>/<job number>/` whichever launcher starts the jobs (the folder name holds `${now:...}` and
  `${pid:}`, which a job started in another process would otherwise resolve again).
- `CheckOutputFolder`: a run or sweep folder that cannot be written stops the command with one sentence.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, flag_override
from omegaconf.errors import OmegaConfBaseException

from src.config.names import override_key

SWEEP_DIR_KEY = "hydra.sweep.dir"


def unwritable_reason(folder: Path) -> str | None:
    """Why `folder` cannot be created and written to, or None if it can (it is created)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write_test.{os.getpid()}"  # one per process: several may share a sweep folder
        probe.touch()
        probe.unlink()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def quoted_override_value(value: str) -> str:
    """`value` as a quoted Hydra override value that parses back to exactly `value` (any path)."""
    value = re.sub(r"(\\+)('|$)", lambda m: m.group(1) * 2 + m.group(2), value)  # backslashes before a quote
    return "'" + value.replace("'", "\\'") + "'"


def stop(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


class OneSweepFolder(Callback):
    """Resolve `hydra.sweep.dir` once in the launching process and pin it for every job.

    Every launcher composes each job's config afresh from the sweep's Hydra overrides plus the job's
    own (`load_sweep_config`), in this process (basic launcher) or in another one (joblib workers,
    submitit jobs, which unpickle the sweep's config on a cluster node). The folder resolved here is
    put among those Hydra overrides, so each job composes the same absolute folder, also when it
    is requeued. A folder that already holds a sweep (`multirun.yaml`, named with
    `hydra.sweep.dir=...`) is continued only by the same command: its finished jobs are kept
    and its interrupted ones resume (src/runs/resume.py); a different sweep there is refused.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = str(Path(str(config.hydra.sweep.dir)).expanduser().absolute())
        self._refuse_another_sweep(Path(folder), config)
        with flag_override(config.hydra, ["readonly", "struct"], [False, False]):
            config.hydra.sweep.dir = folder
            kept = [o for o in config.hydra.overrides.hydra if override_key(str(o)) != SWEEP_DIR_KEY]
            config.hydra.overrides.hydra = [*kept, f"{SWEEP_DIR_KEY}={quoted_override_value(folder)}"]

    @staticmethod
    def _refuse_another_sweep(folder: Path, config: DictConfig) -> None:
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


class CheckOutputFolder(Callback):
    """Stop with one sentence (exit 2) when the run or sweep folder cannot be written."""

    def _check(self, folder: str) -> None:
        reason = unwritable_reason(Path(folder).absolute())
        if reason:
            stop(f"cannot write the run folder {folder} ({reason}); choose a writable logs folder with "
                 "paths.log_dir=PATH.")

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir)

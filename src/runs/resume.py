"""Resuming a run: which checkpoint to continue from, and with which configuration.

- `checkpoint_to_resume(run_dir)`: the checkpoint a run folder continues from (its newest complete
  `interrupted.ckpt` or `last.ckpt`); `find_last_checkpoint(log_dir)` does it for the newest run.
- `resumed_run_config(cfg, overrides, choices)`: what `python -m src.train ... ckpt_path=X` runs:
  the checkpoint's own run configuration (so logs and checkpoints continue in the run's folder),
  with this command's `key=value` overrides on top. Group choices (`model=lenet`) that the run
  already had are accepted, so the original command plus `ckpt_path` resumes; a different choice
  is refused, as it would be a different run.
- `COMPOSITION_KEY`: the group choices and overrides a run was composed from (src/runs/record.py's
  `composition_of`), stored in its checkpoints so that a resumed run can be compared with the command
  that resumes it.
- `read_resume_point(cfg)`: the checkpoint `ckpt_path` names, read once (memory-mapped) for its run
  configuration, composition and step, before Lightning loads it whole to continue the run.
- `finished_run(run_dir, overrides)` and `resumed_run_config(..., restarting=True)`: the same command
  started again in the folder of its earlier start (a requeued sweep job: its folder depends only
  on the sweep folder and the job number) does not train a finished run again, and continues an
  interrupted one from its checkpoint; a folder holding a run of other overrides is refused.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from src.config.names import CONFIG_GROUPS, override_key, plain
from src.errors import UserError, require
from src.runs.checkpoint import load_checkpoint
from src.runs.record import COMPOSITION_KEY, RunRecord, read_record

RESUMABLE = ("interrupted*.ckpt", "last*.ckpt")  # written by CheckpointOnInterrupt and ModelCheckpoint(save_last)


# --- which checkpoint --------------------------------------------------------------------------------
def is_complete(path: Path) -> bool:
    """Whether a checkpoint file is whole: torch's zip format ends with its directory, which a file cut
    short by a crash while it was written in place (not by `AtomicCheckpointIO`) lacks."""
    try:
        return path.is_file() and zipfile.is_zipfile(path)
    except OSError:
        return False


def checkpoint_to_resume(run_dir: str | Path) -> Path | None:
    """The checkpoint a run folder continues from: its newest complete `interrupted.ckpt` or `last.ckpt`
    (under `<run_dir>/checkpoints/`), or None when it has none."""
    folder = Path(run_dir) / "checkpoints"
    found = [p for pattern in RESUMABLE for p in folder.glob(pattern) if is_complete(p)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def find_last_checkpoint(log_dir: str | Path, task: str = "train") -> Path:
    """`ckpt_path=last`: the checkpoint to resume of the task's run (single run or sweep job) that
    saved one most recently."""
    base = Path(log_dir) / task
    runs = [*base.glob("runs/*"), *base.glob("multiruns/*/*")]
    found = [ckpt for run in runs if (ckpt := checkpoint_to_resume(run)) is not None]
    require(bool(found), f"ckpt_path=last found no last.ckpt or interrupted.ckpt under {base}; pass the path of "
                         "a checkpoint instead.")
    return max(found, key=lambda p: p.stat().st_mtime)


def resolve_resume_path(ckpt_path: Any, cfg: DictConfig) -> Path:
    """The checkpoint file `ckpt_path` names (`last`: see `find_last_checkpoint`)."""
    if str(ckpt_path) == "last":
        return find_last_checkpoint(cfg.paths.log_dir, cfg.task_name)
    return Path(str(ckpt_path)).expanduser()


@dataclass(frozen=True)
class ResumePoint:
    """What a run continues from, read once from its checkpoint (Lightning then loads it whole)."""

    path: Path
    run_config: dict[str, Any]  # the configuration the checkpoint's run was trained with
    composition: dict[str, Any]  # its {"choices", "overrides"}, or {} when it records none
    global_step: int | str  # the optimizer steps done ("unknown" when not recorded)
    state_dict: dict[str, Any]  # its weights, memory-mapped: shapes are read, values are not

    def check_weights_fit(self, module: Any) -> None:
        """One sentence when the checkpoint's weights cannot load into `module` (other layers or shapes),
        instead of the long list `load_state_dict` raises when Lightning loads it."""
        ours, saved = module.state_dict(), self.state_dict
        missing, unexpected = [k for k in ours if k not in saved], [k for k in saved if k not in ours]
        reshaped = [k for k in ours if k in saved and hasattr(saved[k], "shape") and saved[k].shape != ours[k].shape]
        if not (missing or unexpected or reshaped):
            return
        key = (reshaped or missing or unexpected)[0]
        example = f"{key} is {list(saved[key].shape)} there, {list(ours[key].shape)} here" if reshaped else \
            f"{key} is {'missing' if missing else 'extra'} there"
        raise UserError(
            f"the checkpoint's weights do not fit this model ({len(missing) + len(unexpected) + len(reshaped)} "
            f"tensors differ, e.g. {example}); use the run's own model settings, or start a new run without ckpt_path.")

    def continue_logs(self, loggers: list[Any], out_dir: Path) -> None:
        """Say where the resumed run goes on, and keep the CSV rows logged so far (`keep_csv_logs`)."""
        print(f"Resuming from {self.path}: logs and checkpoints continue in {out_dir}", flush=True)
        keep_csv_logs(loggers, self.global_step)


def read_resume_point(cfg: DictConfig) -> ResumePoint | None:
    """The checkpoint `cfg.ckpt_path` names, its tensors memory-mapped and left unread; None without one."""
    if not cfg.get("ckpt_path"):
        return None
    path, ckpt = load_checkpoint(str(resolve_resume_path(cfg.ckpt_path, cfg)), tensors_on_demand=True)
    return ResumePoint(path, ckpt["run_config"], ckpt.get(COMPOSITION_KEY) or {}, ckpt.get("global_step", "unknown"),
                       ckpt.get("state_dict") or {})


def checked_resume_point(cfg: DictConfig, run_config: dict[str, Any], point: ResumePoint | None) -> ResumePoint | None:
    """`point` (read here when not given) once checked to build the same kind of model on the same data
    set as `run_config`."""
    point = point or read_resume_point(cfg)
    if point is not None:
        check_resumable(run_config, point.run_config, point.path)
    return point


# --- the same command started again in its own folder ------------------------------------------------------
class AnotherRunInFolder(UserError):
    """The folder a command writes into holds a run of other overrides: nothing in it is touched."""


def described_by(overrides: list[str]) -> list[str]:
    """The overrides that make a run what it is, order aside (not `ckpt_path`, not Hydra's settings)."""
    return sorted(normalised(o) for o in merged_overrides([], [str(o) for o in overrides]))


def refuse_another_run(run_dir: Path, recorded: list[str], overrides: list[str]) -> None:
    """A command restarted in `run_dir` must be the command of the run recorded there."""
    if described_by(recorded) != described_by(overrides):
        raise AnotherRunInFolder(
            f"{run_dir} already holds a run of other overrides ({' '.join(recorded) or 'none'}); start that run's "
            "own command to continue it, or write this one elsewhere (a new sweep folder, or hydra.run.dir=...)."
        )


def finished_run(run_dir: str | Path, overrides: list[str]) -> RunRecord | None:
    """The record of the run `run_dir` holds, when it finished: the record is newer than every
    checkpoint to resume there (a run continued later and interrupted again is not finished). None
    when the folder holds no finished run (an unreadable record is none); `AnotherRunInFolder` when
    it holds a finished run of other overrides."""
    record = read_record(run_dir)
    if record is None or not record.finished:
        return None
    ckpt = checkpoint_to_resume(run_dir)
    if ckpt is not None and ckpt.stat().st_mtime > record.path.stat().st_mtime:
        return None
    refuse_another_run(Path(run_dir), list(record.overrides or []), overrides)
    return record


# --- which configuration -------------------------------------------------------------------------------
def merged_overrides(before: list[str], after: list[str]) -> list[str]:
    """The overrides of a run continued by a command: its own, then the command's (one per key, the
    command's winning); `ckpt_path` and Hydra's own settings are not part of a run's description."""
    merged: dict[str, str] = {}
    for override in [*before, *after]:
        key = override_key(override)
        if key != "ckpt_path" and not key.startswith(("hydra.", "hydra/")):
            merged.pop(key, None)
            merged[key] = override
    return list(merged.values())


def resumed_run_config(cfg: DictConfig, overrides: list[str], choices: dict[str, Any], restarting: bool = False,
                       point: ResumePoint | None = None) -> tuple[DictConfig, dict[str, Any] | None]:
    """(config to run, composition to record) for a command with `overrides` whose composition chose
    `choices`. Without `ckpt_path`: `cfg` as it is (and None). With it: the checkpoint's run
    configuration with this command's value overrides on top and its group overrides checked against
    the run's; `ckpt_path` set to the checkpoint file; the run's composition plus these overrides.
    `restarting`: the checkpoint was found in the folder this command writes into, so it must be
    the checkpoint of this very command (`AnotherRunInFolder` otherwise). `point`: the checkpoint
    already read (`read_resume_point(cfg)`), else it is read here."""
    point = point or read_resume_point(cfg)
    if point is None:
        return cfg, None
    path, run_config, recorded = point.path, point.run_config, point.composition
    if restarting:
        refuse_another_run(path.parent.parent, list(recorded.get("overrides") or []), overrides)
    resumed = OmegaConf.create(run_config)
    for override in overrides:
        key = override_key(override)
        if key == "ckpt_path" or key.startswith(("hydra.", "hydra/")):
            continue  # Hydra's own settings (e.g. the run folder of a DDP worker) describe this process only
        if key in CONFIG_GROUPS or "/" in key or key in choices:
            same = same_group_choice(key, override, cfg, choices, run_config, recorded)
            if not same:
                raise UserError(
                    f"a resumed run keeps its configuration, so '{override}' cannot change it{same_as(key, recorded)}; "
                    "drop it, or start a new run without ckpt_path."
                )
            continue
        if override.startswith("~"):
            delete_key(resumed, key)
        else:
            resumed.merge_with(OmegaConf.from_dotlist([override.lstrip("+")]))
    resumed.ckpt_path = str(path)
    composition = {"choices": dict(recorded.get("choices") or {}),
                   "overrides": merged_overrides(list(recorded.get("overrides") or []), overrides)}
    return resumed, composition


def same_group_choice(key: str, override: str, cfg: DictConfig, choices: dict[str, Any], run_config: dict,
                      recorded: dict) -> bool:
    """Whether a group override picks what the resumed run already had: the same recorded choice, the
    same recorded override, or (a checkpoint without a record) the same composed content."""
    run_choices, run_overrides = recorded.get("choices") or {}, recorded.get("overrides") or []
    if key in run_choices and key in choices:
        return str(run_choices[key]) == str(choices[key])
    earlier = [o for o in run_overrides if override_key(o) == key]
    if earlier:
        return normalised(earlier[-1]) == normalised(override)
    if key in run_config and key in cfg:
        return plain(cfg[key]) == run_config[key]
    return False


def same_as(key: str, recorded: dict) -> str:
    """': the run used KEY=CHOICE' where the checkpoint records it."""
    choice = (recorded.get("choices") or {}).get(key)
    earlier = [o for o in recorded.get("overrides") or [] if override_key(o) == key]
    if earlier:
        return f" (the run used '{earlier[-1]}')"
    return f" (the run used '{key}={choice}')" if choice is not None else ""


def normalised(override: str) -> str:
    return override.lstrip("+").replace(" ", "")


def delete_key(cfg: DictConfig, dotted: str) -> None:
    """`~a.b.c`: remove the key if the configuration has it."""
    parent_key, _, leaf = dotted.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if isinstance(parent, DictConfig) and leaf in parent:
        del parent[leaf]


def check_resumable(cfg: dict[str, Any], run_config: dict[str, Any], path: Path) -> None:
    """A configuration resuming a checkpoint must build the same kind of model on the same data set."""
    def ident(config: dict[str, Any]) -> tuple:
        model, data = config.get("model") or {}, config.get("data") or {}
        net = model.get("net") if isinstance(model.get("net"), dict) else {}
        return model.get("_target_"), net.get("_target_"), data.get("_target_"), data.get("name")

    ours, theirs = ident(cfg), ident(run_config)
    require(
        ours == theirs,
        f"{path} was trained with model {theirs[1] or theirs[0]} on {theirs[3]}, but this configuration has model "
        f"{ours[1] or ours[0]} on {ours[3]}: resume with the run's own model and data choices, or start a new run "
        "without ckpt_path.",
    )


def keep_csv_logs(loggers: list[Any], step: int | str) -> list[Path]:
    """Lightning's CSV logger deletes the `metrics.csv` it finds in its folder; a resumed run moves the
    one of the run so far aside (`metrics_before_resume_<step>.csv`) so that no logged row is lost."""
    kept = []
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            metrics = Path(logger.log_dir) / "metrics.csv"
            if metrics.is_file():
                kept.append(metrics.replace(metrics.with_name(f"metrics_before_resume_{step}.csv")))
    return kept


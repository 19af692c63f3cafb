"""What `src.report <sweep folder>` adds for an Optuna search: every trial (state, parameters, values,
epochs run), the best trial (or the Pareto front of several objectives) and the parameter importances
(Optuna's default evaluator). The study is found through the sweep's `multirun.yaml` (its storage and
study name), so a study in a database server is read from there."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from src.runs.sweep import PRUNED_FILE
from src.sweeps.study import open_storage, storage_url

SWEEPER = "hydra_plugins.classify_optuna_sweeper.optuna_sweeper.OptunaSweeper"


def load_search(sweep_dir: Path) -> optuna.Study | None:
    """The Optuna study of `sweep_dir`, or None when it is not an Optuna search's folder."""
    try:
        sweeper = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.sweeper
    except Exception:  # no multirun.yaml, or not Hydra's
        return None
    if sweeper.get("_target_") != SWEEPER:
        return None
    url = storage_url(sweeper.get("storage"), sweep_dir)
    return optuna.load_study(study_name=str(sweeper.study_name), storage=open_storage(url))


def _note(trial: FrozenTrial, sweep_dir: Path) -> str:
    """"retry of trial N" (a trial queued again after its process stopped or died) and how a pruned trial ended."""
    notes = []
    if "retry_of" in trial.user_attrs or "failed_trial" in trial.system_attrs:
        notes.append(f"retry of trial {trial.user_attrs.get('retry_of', trial.system_attrs.get('failed_trial'))}")
    pruned = sweep_dir / str(trial.number) / PRUNED_FILE
    if trial.state == TrialState.PRUNED:
        if pruned.is_file():
            notes.append(json.loads(pruned.read_text())["message"])
        else:
            notes.append(f"pruned at epoch {trial.last_step}" if trial.last_step is not None else "pruned")
    return "; ".join(notes)


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trials_table(study: optuna.Study, sweep_dir: Path) -> list[str]:
    metrics = study.user_attrs.get("metrics") or ["value"]
    names = sorted({name for t in study.trials for name in t.params})
    header = ["trial", "state", *names, *metrics, "epochs", "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in study.trials:
        values = list(t.values) if t.values else [""] * len(metrics)
        cells = [str(t.number), t.state.name.lower(), *(_value(t.params.get(n, "")) for n in names),
                 *map(_value, values), str(t.user_attrs.get("epochs", "")), _note(t, sweep_dir)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def study_section(sweep_dir: Path) -> str:
    """The Markdown section of the study behind `sweep_dir` ("" when there is none)."""
    study = load_search(sweep_dir)
    if study is None:
        return ""
    states = [t.state for t in study.trials]
    counts = ", ".join(f"{states.count(s)} {s.name.lower()}" for s in TrialState if states.count(s))
    metrics = study.user_attrs.get("metrics") or ["value"]
    directions = ", ".join(f"{d.name.lower()} {m}" for d, m in zip(study.directions, metrics))
    lines = [f"## Optuna study {study.study_name}", "", f"{len(states)} trials ({counts}); {directions}.", ""]
    lines += trials_table(study, sweep_dir) + [""]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if complete and len(metrics) > 1:
        front = sorted(study.best_trials, key=lambda t: t.values)
        lines += [f"Pareto front ({len(front)} trials, none better in every objective): "
                  + "; ".join(f"trial {t.number} ({', '.join(f'{m}={_value(v)}' for m, v in zip(metrics, t.values))})"
                              for t in front), ""]
    elif complete:
        best = study.best_trial
        lines += [f"Best trial: {best.number} ({metrics[0]}={_value(best.value)}): "
                  + ", ".join(f"{k}={_value(v)}" for k, v in best.params.items()), ""]
    if len(complete) >= 2 and len(metrics) == 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
        lines += ["Parameter importances (Optuna's default evaluator): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()), ""]
    return "\n".join(lines) + "\n"


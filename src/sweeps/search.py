"""The ask/tell loop of a search: ask the study for trials, launch one Hydra job per trial through
the configured launcher, tell the study how each ended.

`n_trials` counts the whole study: finished and pruned trials (of this process, an earlier run of the
same command, or another process sharing the study) and those running now; a failed trial does not
count, and a trial whose process died is queued again (src/sweeps/study.py). After `max_failed_trials`
failed trials of its own the search stops with the last one's reason. A process with nothing left to
ask waits while trials of other processes run (a database with heartbeats): one that died has its
trial failed and queued again, and the waiting process runs it. Trial N runs in the job folder
`<sweep folder>/N`. A single-objective job reports its metric after every validation to its
trial and stops when the pruner says so (src/callbacks/optuna_trial.py); it learns its study from the
`+callbacks.optuna_trial.*` overrides given here.
"""

from __future__ import annotations

import logging
import math
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobStatus
from omegaconf import DictConfig, OmegaConf, flag_override, open_dict
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from src.config.sweep_folder import quoted_override_value
from src.errors import UserError, require
from src.runs.record import RunRecord, read_record
from src.runs.sweep import PRUNED_FILE
from src.sweeps.coordination import Heartbeat, PendingAsk, ask_lock
from src.sweeps.space import search_space, suggest, trial_overrides
from src.sweeps.study import make_pruner, open_storage, open_study, search_sampler, shown, storage_url

log = logging.getLogger(__name__)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)  # a WAITING one is asked for next
ASK_TRIES = 5  # asks in a row whose trials other processes failed, before the search stops


def objectives(settings: DictConfig, config: DictConfig) -> tuple[list[str], list[str]]:
    """(metrics, directions): the sweeper's `metrics` or the job's `optimized_metric`, one direction each."""
    directions = settings.direction
    directions = [directions] if isinstance(directions, str) else list(directions)
    metrics = settings.get("metrics") or [config.get("optimized_metric")]
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    for direction in directions:
        require(direction in ("maximize", "minimize"),
                f"hydra.sweeper.direction={direction} is neither maximize nor minimize; use one per metric.")
    require(len(metrics) == len(directions), f"hydra.sweeper.metrics lists {len(metrics)} metric(s) "
            f"({', '.join(map(str, metrics))}) but hydra.sweeper.direction {len(directions)}; give one direction per "
            "metric, e.g. direction: [maximize, minimize] with metrics: [val/acc_best, wall_time_s].")
    return metrics, directions


def job_values(record: RunRecord | None, metrics: Sequence[str]) -> list[float] | None:
    """A finished job's values of `metrics` from its run record (a metric, or a record field such as
    `wall_time_s`), or None when it did not finish or lacks a finite value of one."""
    if record is None or not record.finished:
        return None
    values = [record.metrics.get(m, getattr(record, m, None)) for m in metrics]
    if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values]


@dataclass
class Search:
    """An opened search: its study, what every trial's job is given, and how many trials to run."""

    study: optuna.Study
    storage: Any
    space: dict[str, BaseDistribution]
    job_overrides: list[str]  # the command's fixed overrides and the trial callback's settings
    metrics: list[str]
    sweep_dir: Path
    n_trials: int
    n_jobs: int
    heartbeat_s: int | None
    max_failed_trials: int
    url: str = ""  # the storage's URL: where the ask lock is taken
    heartbeat: Heartbeat = field(init=False)
    ask_lock: Any = field(init=False)
    study_id: int = field(init=False)

    def __post_init__(self) -> None:
        self.heartbeat = Heartbeat(self.storage, self.heartbeat_s)
        self.ask_lock = ask_lock(self.url, self.study.study_name)
        self.study_id = self.storage.get_study_id_from_name(self.study.study_name)
        if hasattr(self.study.sampler, "heartbeat"):  # the search sampler records a new trial's first heartbeat
            self.study.sampler.heartbeat = self.heartbeat

    def trial_id(self, trial: optuna.trial.Trial) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)


def open_search(settings: DictConfig, arguments: Sequence[str], config: DictConfig) -> Search:
    """Check the settings, open (or create) the study; nothing is launched yet."""
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url(settings.get("storage"), sweep_dir)
    if settings.get("storage"):  # as an absolute path: src.report finds the study through multirun.yaml
        with open_dict(config), flag_override(config, "readonly", False):
            config.hydra.sweeper.storage = url
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    space, fixed = search_space(settings.get("params"), arguments)
    require(space, "there is nothing to search: give hydra.sweeper.params (e.g. optimizer.lr: "
                   "tag(log, interval(0.0001, 0.1))) or a search expression on the command line.")
    metrics, directions = objectives(settings, config)
    pruner_name = str(settings.get("pruner") or "none")
    pruner_args = dict(settings.get("pruner_args") or {})  # absent where `~hydra.sweeper.pruner_args` dropped it
    pruner = make_pruner(pruner_name, pruner_args)
    require(len(metrics) == 1 or pruner_name == "none",
            f"Optuna prunes single-objective studies only; set hydra.sweeper.pruner=none for {len(metrics)} metrics.")
    sampler_setting = settings.get("sampler")
    sampler = search_sampler(OmegaConf.to_container(sampler_setting) if isinstance(sampler_setting, DictConfig)
                             else sampler_setting, settings.get("seed"))
    max_failed = settings.get("max_failed_trials", 3)
    require(isinstance(max_failed, int) and max_failed >= 1, f"hydra.sweeper.max_failed_trials={max_failed} is "
            "not a whole number above 0; give how many failed trials stop the search, e.g. 3.")
    storage = open_storage(url, settings.get("heartbeat_s"))
    study = open_study(storage, settings.study_name, url, directions, sampler, pruner, space)
    study.set_user_attr("metrics", list(metrics))
    log.info(f"Study {study.study_name} in {shown(url)}: {settings.n_trials} trials, {', '.join(directions)} "
             f"{', '.join(metrics)}, sampler {type(sampler.sampler).__name__}, pruner {pruner_name}")
    command = shlex.join(["python", "-m", f"src.{config.hydra.job.name}", *sys.argv[1:]])  # a stopped trial's hint
    trial_callback = dict(_target_="src.callbacks.optuna_trial.OptunaTrial", storage=url, study_name=study.study_name,
                          monitor=metrics[0], pruner=pruner_name, command=command)
    job_overrides = [*fixed, *(f"+callbacks.optuna_trial.{k}={quoted_override_value(str(v))}"
                               for k, v in trial_callback.items()),
                     *(f"+callbacks.optuna_trial.pruner_args.{k}={v}" for k, v in pruner_args.items())]
    return Search(study, storage, space, job_overrides, metrics, sweep_dir, int(settings.n_trials),
                  int(settings.n_jobs), settings.get("heartbeat_s"), max_failed, url)


def next_trials(search: Search) -> list[optuna.trial.Trial]:
    """Up to `n_jobs` new trials, as many as the study lacks (none: the search is done). Under the study's
    ask lock, one process at a time fails the trials of dead processes (and queues them again), counts
    the study and adds its trials (a queued one first), so processes asking at once never go beyond
    `n_trials`; the parameters are drawn after the lock is let go, while the trials' heartbeats beat. A
    trial that another process failed meanwhile (this one stalled for 2 x heartbeat_s: its retry is
    queued) is left out, and the study is asked again, up to `ASK_TRIES` times."""
    study = search.study
    for _ in range(ASK_TRIES):
        with warnings.catch_warnings():  # Optuna marks fail_stale_trials experimental, heartbeats as optimize's
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with")
            with search.ask_lock(), PendingAsk(study, search.storage, search.study_id, search.heartbeat):
                optuna.storages.fail_stale_trials(study)
                counted = len(study.get_trials(deepcopy=False, states=COUNTED))
                trials = [study.ask() for _ in range(min(search.n_jobs, search.n_trials - counted))]
                for trial in trials if getattr(study.sampler, "counts_in_study", False) else []:
                    _ = trial.relative_params  # QMC numbers its points in the study: one process at a time
        asked = [trial for trial in trials if draw(search, trial)]
        if asked or not trials:
            return asked
    raise UserError(f"this process stalled for more than 2 x hydra.sweeper.heartbeat_s ({2 * search.heartbeat_s} "
                    f"s) in each of {ASK_TRIES} asks, and other processes failed its trials each time; raise "
                    "hydra.sweeper.heartbeat_s (e.g. 60) or lighten the machine's load, and run the command again.")


def draw(search: Search, trial: optuna.trial.Trial) -> bool:
    """Draw `trial`'s parameters (a queued trial keeps its own); False when another process failed it
    meanwhile (it took this process for dead and queued the trial again)."""
    try:
        suggest(trial, search.space)
        return True
    except UpdateFinishedTrialError:
        search.heartbeat.discard(search.trial_id(trial))
        log.warning(f"Trial {trial.number} was failed by another process while this one drew its parameters "
                    "(its heartbeat came more than 2 x heartbeat_s late) and queued again; asking for another.")
        return False


def failure(record: RunRecord | None, metrics: Sequence[str]) -> str:
    """Why a job gave its trial no value: its error, or the metric its record lacks."""
    if record is None:
        return "the job wrote neither metrics.json nor failed.json"
    if not record.finished:
        return " ".join(str(record.error or "the job failed").split())[:160]
    for metric in metrics:
        value = record.metrics.get(metric, getattr(record, metric, None))
        if value is None:
            recorded = sorted(record.metrics)
            return (f"no run recorded {metric}; the runs record {', '.join(recorded[:8])}"
                    + (", ..." if len(recorded) > 8 else ""))
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{metric} was {value}"
    return "no value"


def run_trials(search: Search, trials: Sequence[optuna.trial.Trial], launcher: Any) -> list[tuple[int, str]]:
    """Launch one job per trial (trial N in `<sweep folder>/N`) and tell the study how each ended; the
    failed ones (number, reason)."""
    study = search.study
    jobs = [[*search.job_overrides, *trial_overrides(t.params), f"+callbacks.optuna_trial.trial={t.number}",
             f"hydra.sweep.subdir={t.number}"] for t in trials]
    ids = [search.trial_id(t) for t in trials]
    try:
        returns = launcher.launch(jobs, initial_job_idx=trials[0].number)
    except BaseException:  # stopped (a signal, Ctrl-C) or crashed: these trials did not finish
        for trial in trials:
            try:
                study.tell(trial, state=TrialState.FAIL)
            except (ValueError, UpdateFinishedTrialError):  # failed by another process, which queued it again
                continue
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        raise
    finally:
        search.heartbeat.discard(*ids)
    faults, failed = [], []
    for trial, ret in zip(trials, returns):
        job_dir = search.sweep_dir / str(trial.number)
        record = read_record(job_dir)
        values = job_values(record, search.metrics)
        if (job_dir / PRUNED_FILE).is_file():
            tell(study, trial, state=TrialState.PRUNED)  # not a failure: the pruner stopped it
        elif values is not None:
            tell(study, trial, values=values)
        else:
            log.warning(f"Trial {trial.number} failed (no value of {', '.join(search.metrics)}): see {job_dir}")
            tell(study, trial, state=TrialState.FAIL)
            failed.append((trial.number, failure(record, search.metrics)))
            if ret.status == JobStatus.FAILED and record is None:
                faults.append(ret)
    for ret in faults:  # a fault in the code (not recorded as the job's failure) stops the search, as it stops a sweep
        _ = ret.return_value  # raises the job's exception
    return failed


def tell(study: optuna.Study, trial: optuna.trial.Trial, **ending: Any) -> None:
    """Tell the study how `trial` ended, unless another process failed it meanwhile (its heartbeat came
    late: that process took this one for dead and queued the trial again)."""
    try:
        told = study.tell(trial, skip_if_finished=True, **ending).state
    except UpdateFinishedTrialError:  # failed between Optuna's check and its write
        told = TrialState.FAIL
    if told == TrialState.FAIL and ending.get("state") != TrialState.FAIL:
        log.warning(f"Trial {trial.number} was failed by another process (its heartbeat came more than "
                    "2 x heartbeat_s late) and queued again; its result here is not kept.")


def run_search(settings: DictConfig, arguments: Sequence[str], config: DictConfig, launcher: Any) -> None:
    """Run the search `settings` (hydra.sweeper) until its study holds `n_trials` trials."""
    search = open_search(settings, arguments, config)
    failed: list[tuple[int, str]] = []
    while True:
        trials = next_trials(search)
        if not trials and not wait_for_others(search):
            break
        failed += run_trials(search, trials, launcher) if trials else []
        if len(failed) >= search.max_failed_trials:
            number, reason = failed[-1]
            raise UserError(f"{len(failed)} trials of this search failed (the last, trial {number}: {reason}); fix "
                            "that and run the same command again, or allow more with "
                            "hydra.sweeper.max_failed_trials=N.")
    search.heartbeat.close()
    waiting = search.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if waiting:  # the study holds n_trials without them (n_trials was lowered since they were queued)
        log.warning(f"Trials {', '.join(str(t.number) for t in waiting)} are queued but not run: the study holds "
                    f"{search.n_trials} trials; raise hydra.sweeper.n_trials to run them.")
    write_results(search.study, search.sweep_dir, search.metrics)


def wait_for_others(search: Search) -> bool:
    """Whether trials of other processes still run (a database with heartbeats), after a pause: one may
    be of a dead process, failed and queued again once its heartbeat is `2 * heartbeat_s` old."""
    if not search.heartbeat_s or not isinstance(search.storage, optuna.storages.RDBStorage):
        return False
    running = search.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if running:
        log.info(f"Waiting for {len(running)} trial(s) of other processes: {', '.join(str(t.number) for t in running)}")
        time.sleep(max(1.0, search.heartbeat_s / 4))
    return bool(running)


def write_results(study: optuna.Study, sweep_dir: Path, metrics: Sequence[str]) -> None:
    """`optimization_results.yaml`: the best trial's parameters and value (the Pareto front's with several)."""
    best = study.best_trials if len(metrics) > 1 else ([study.best_trial] if _has_complete(study) else [])
    results = {"name": "optuna", "study_name": study.study_name, "metrics": list(metrics),
               "best_trials": [{"number": t.number, "params": t.params, "values": t.values} for t in best]}
    if len(metrics) == 1 and best:
        results.update(best_params=best[0].params, best_value=best[0].value)
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
    if not best:
        raise UserError(f"no trial of the study {study.study_name} finished; see the failed jobs' failed.json "
                        f"in {sweep_dir}.")
    log.info(f"Best: {results['best_trials']}")


def _has_complete(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

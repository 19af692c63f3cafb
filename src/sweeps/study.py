"""An Optuna study and where it lives: storage, sampler, pruner, and the checks that a study found
under the name is the one this search continues.

Storage (`hydra.sweeper.storage`):
- null: a SQLite file `optuna.db` in the sweep folder; the same command continues the study;
- a database URL (`postgresql://user:password@host:5432/db`, `mysql+pymysql://...`, `sqlite:///path`):
  one study shared by every sweep process that names it, on any machine;
- `journal:PATH`: Optuna's journal file, for a filesystem shared by several machines without a database.
A database trial whose sweep process died stops sending heartbeats; after `2 * heartbeat_s` it is failed
and queued again with the same parameters.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from optuna.distributions import BaseDistribution
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from sqlalchemy.exc import SQLAlchemyError

from hydra_plugins.classify_optuna_sweeper.settings import PRUNER_CLASSES
from src.errors import UserError, require

DEFAULT_FILE = "optuna.db"
PRUNED_FILE = "pruned.json"  # in a pruned trial's job folder: when and why
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    RETRY = RetryHeartbeatStaleTrialCallback(max_retry=3)  # a dead process's trial runs again, up to 3 times
PRUNERS = {name: getattr(optuna.pruners, cls) for name, cls in PRUNER_CLASSES.items()}
SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
    "nsgaii": optuna.samplers.NSGAIISampler,
}


def storage_url(setting: str | None, sweep_dir: str | Path) -> str:
    """The storage a search uses: `setting` (a relative SQLite or journal path made absolute, so every job
    and `src.report` find it from any folder), or the SQLite file in the sweep folder."""
    if not setting:
        return f"sqlite:///{Path(sweep_dir).absolute() / DEFAULT_FILE}"
    for prefix in ("sqlite:///", "journal:"):
        path = setting.removeprefix(prefix)
        if setting.startswith(prefix) and path and not Path(path).expanduser().is_absolute():
            return prefix + str(Path(path).absolute())
    return setting


def shown(url: str) -> str:
    """`url` without its password."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


def open_storage(url: str, heartbeat_s: int | None = None) -> RDBStorage | JournalStorage:
    """Optuna's storage behind `url` (a connection is made now: a server that cannot be reached is said here)."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:")).expanduser()
        require(path.parent.is_dir(), f"hydra.sweeper.storage={url}: there is no folder {path.parent} for the "
                                      "journal file; create it (on the filesystem every machine shares).")
        return JournalStorage(JournalFileBackend(str(path)))
    require("://" in url, f"hydra.sweeper.storage={url} is neither a database URL (postgresql://user@host:port/db, "
                          "mysql+pymysql://..., sqlite:///file.db) nor journal:PATH; use one of those, or null for "
                          "a SQLite file in the sweep folder.")
    heartbeat = dict(heartbeat_interval=heartbeat_s, grace_period=2 * heartbeat_s,
                     heartbeat_stale_trial_callback=RETRY) if heartbeat_s else {}
    connect = {"connect_args": {"connect_timeout": 10}} if url.startswith(("postgresql", "mysql")) else {}
    try:
        with warnings.catch_warnings():  # Optuna marks heartbeats experimental (since 2.8)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, engine_kwargs=connect, **heartbeat)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise UserError(f"cannot open the study database {shown(url)} ({type(exc).__name__}: {reason}); check that "
                        "the server runs and is reachable at that host and port, that the user, password and "
                        "database exist, and that its driver is installed (psycopg for PostgreSQL, PyMySQL "
                        "for MySQL).") from None


def make_pruner(name: str, args: Mapping[str, Any] | None = None) -> optuna.pruners.BasePruner:
    require(name in PRUNERS, f"hydra.sweeper.pruner={name} is not a pruner; choose one of {', '.join(PRUNERS)}.")
    if name == "none":  # the arguments a config sets for its pruner do not apply
        return PRUNERS[name]()
    try:
        return PRUNERS[name](**dict(args or {}))
    except TypeError as exc:
        raise UserError(f"hydra.sweeper.pruner_args do not fit the {name} pruner ({exc}); drop the config's with "
                        f"'~hydra.sweeper.pruner_args' and set {PRUNERS[name].__name__}'s own as "
                        "+hydra.sweeper.pruner_args.NAME=VALUE.") from None


def make_sampler(setting: Any, seed: int | None) -> optuna.samplers.BaseSampler:
    """A sampler by name (`tpe`, `random`, ...) or from a config with `_target_`; `seed` where it sets none."""
    if isinstance(setting, str) or setting is None:
        name = setting or "tpe"
        require(name in SAMPLERS, f"hydra.sweeper.sampler={name} is not a sampler; choose one of "
                                  f"{', '.join(SAMPLERS)}, or give a config with _target_: optuna.samplers.<Name>.")
        return SAMPLERS[name](seed=seed)
    settings = dict(setting)
    if seed is not None and settings.get("seed") is None:
        settings["seed"] = seed
    target = settings.get("_target_", "")
    try:
        sampler = instantiate(settings)
    except Exception as exc:
        raise UserError(f"hydra.sweeper.sampler ({target or 'no _target_'}) cannot be built "
                        f"({str(exc).splitlines()[0]}); name an Optuna sampler, e.g. optuna.samplers.TPESampler, "
                        f"or one of {', '.join(SAMPLERS)}.") from None
    require(isinstance(sampler, optuna.samplers.BaseSampler),
            f"hydra.sweeper.sampler ({target}) is not an Optuna sampler; name one, e.g. optuna.samplers.TPESampler.")
    return sampler


def open_study(storage: Any, name: str, url: str, directions: Sequence[str], sampler: Any, pruner: Any,
               space: Mapping[str, BaseDistribution]) -> optuna.Study:
    """The study `name` in `storage`, created when absent; refused when it holds a search of another
    direction or over other parameters (its trials would not be comparable)."""
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner,
                                directions=list(directions), load_if_exists=True)
    theirs = [d.name.lower() for d in study.directions]
    where = f"the study {name} in {shown(url)}"
    require(theirs == list(directions), f"{where} optimises in direction {theirs}, not {list(directions)}; name "
                                        "another study with hydra.sweeper.study_name=NAME or set its direction.")
    for trial in study.get_trials(deepcopy=False, states=FINISHED):  # a running one may hold some params only
        if trial.distributions and trial.distributions != dict(space):
            differ = sorted(set(trial.distributions.items()) ^ set(space.items()), key=str)
            names = sorted({k for k, _ in differ})
            raise UserError(f"{where} searched other parameters ({', '.join(names)} differ); continue it with its "
                            "own search space, or name another study with hydra.sweeper.study_name=NAME.")
    return study


def trial_of(storage: Any, study_name: str, number: int, pruner: Any) -> optuna.trial.Trial:
    """Trial `number` of a study, to report to from the job that runs it (another process)."""
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
    study_id = storage.get_study_id_from_name(study_name)
    return optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))

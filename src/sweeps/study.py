"""An Optuna study and where it lives: storage, sampler, pruner, and the checks that a study found
under the name is the one this search continues.

Storage (`hydra.sweeper.storage`):
- null: a SQLite file `optuna.db` in the sweep folder; the same command continues the study;
- a database URL (`postgresql://user:password@host:5432/db`, `mysql+pymysql://...`, `sqlite:///path`):
  one study shared by every sweep process that names it, on any machine;
- `journal:PATH`: Optuna's journal file, for a filesystem shared by several machines without a database.
A database trial whose sweep process died stops sending heartbeats; after `2 * heartbeat_s` it is failed
and queued again with the same parameters (src/sweeps/coordination.py).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from hydra.utils import instantiate
from optuna.distributions import BaseDistribution
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from sqlalchemy.exc import ArgumentError, DBAPIError

from src.config.hydra_callbacks import unwritable_reason
from src.errors import UserError, require
from src.sweeps.settings import PRUNER_CLASSES

DEFAULT_FILE = "optuna.db"
CREATE_TRIES = 8  # attempts at creating the tables of a new database
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
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
    """Optuna's storage behind `url`, its tables created when absent (a connection is made now: a server that
    cannot be reached is said here). Several processes may open a new database at the same moment: the one
    whose table creation loses the race tries again and finds the tables made."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:")).expanduser()
        require(path.parent.is_dir(), f"hydra.sweeper.storage={url}: there is no folder {path.parent} for the "
                                      "journal file; create it (on the filesystem every machine shares).")
        # Optuna writes the file and, to lock it, links beside it: both need the folder writable.
        reason = unwritable_reason(path.parent)
        try:
            if reason is None:
                return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        raise UserError(f"hydra.sweeper.storage={url}: cannot write the journal file {path} ({reason}); name a "
                        "journal file in a folder this user may write to.")
    require("://" in url, f"hydra.sweeper.storage={url} is neither a database URL (postgresql://user@host:port/db, "
                          "mysql+pymysql://..., sqlite:///file.db) nor journal:PATH; use one of those, or null for "
                          "a SQLite file in the sweep folder.")
    require(heartbeat_s is None or (isinstance(heartbeat_s, int) and heartbeat_s > 0),
            f"hydra.sweeper.heartbeat_s={heartbeat_s} is not a whole number of seconds above 0; give one (e.g. 60), "
            "or null for no heartbeat (a trial of a dead process then stays running).")
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).expanduser().parent
        require(folder.is_dir(), f"hydra.sweeper.storage={url}: there is no folder {folder} for the SQLite file; "
                                 "create it, or name a file in an existing folder.")
    connect = {"connect_args": {"connect_timeout": 10}} if url.startswith(("postgresql", "mysql")) else {}
    check_connection(url, connect)
    heartbeat = dict(heartbeat_interval=heartbeat_s, grace_period=2 * heartbeat_s,
                     heartbeat_stale_trial_callback=RETRY) if heartbeat_s else {}
    for attempt in range(CREATE_TRIES):
        try:
            with warnings.catch_warnings():  # Optuna marks heartbeats experimental (since 2.8)
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=connect, **heartbeat)
        except (DBAPIError, optuna.exceptions.StorageInternalError) as exc:  # lost the race to create the tables
            reason = _reason(exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc)
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
        except RuntimeError as exc:  # the schema check: tables of another Optuna version
            raise UserError(f"the study database {shown(url)} was made by another Optuna version ({_reason(exc)}); "
                            "upgrade it with: optuna storage upgrade --storage <its URL>, or use "
                            "another database.") from None
    raise UserError(f"cannot create Optuna's tables in {shown(url)} ({reason}); check that this user may create "
                    "tables in that database (PostgreSQL: GRANT CREATE ON SCHEMA public TO the user).")


def _reason(exc: BaseException | None) -> str:
    return " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]


def check_connection(url: str, engine_kwargs: Mapping[str, Any]) -> None:
    """Connect once to `url`: a URL SQLAlchemy cannot read, a driver not installed and a server that cannot
    be reached each end in their own sentence."""
    try:
        engine = sqlalchemy.create_engine(url, **engine_kwargs)
    except ImportError as exc:
        raise UserError(f"the database driver for {shown(url)} is not installed ({exc}); install it (PostgreSQL: "
                        "pip install -e '.[postgres]' with a URL postgresql+psycopg://..., MySQL: pip install "
                        "pymysql with mysql+pymysql://...).") from None
    except ArgumentError as exc:  # also an unknown dialect (NoSuchModuleError)
        raise UserError(f"hydra.sweeper.storage={shown(url)} is not a database URL SQLAlchemy reads ({_reason(exc)}); "
                        "write it as dialect+driver://user:password@host:port/database, e.g. "
                        "postgresql+psycopg://me@dbhost:5432/studies.") from None
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        if url.startswith("sqlite"):
            raise UserError(f"cannot open the SQLite file of {shown(url)} ({_reason(exc)}); check that this user may "
                            "write to it and to its folder.") from None
        raise UserError(f"cannot open the study database {shown(url)} ({type(exc).__name__}: {_reason(exc)}); "
                        "check that the server runs and is reachable at that host and port, and that the user, "
                        "password and database exist.") from None
    finally:
        engine.dispose()


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


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial `number`'s draws in a search seeded with `seed`."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:4], "big")


class SearchSampler(optuna.samplers.BaseSampler):
    """The configured sampler (`build(seed)` makes it), drawing each trial from its own random stream.

    With a seed, trial N draws with the seed `trial_seed(seed, N)`: a study numbers its trials once, so
    processes sharing a study, and a search continued later, never draw the same stream (a sampler built
    with the same seed in each would ask every process for the same parameters), and one process on a new
    study asks the same trials every time. A sampler that places its draws by the study's own count
    (QMC) keeps the one seed, as every process of its study must. A new trial's first heartbeat is
    recorded as soon as the trial exists, and the search's heartbeat thread beats it from then on
    (`heartbeat`, a database with heartbeats): its parameters are drawn while it beats, and the trial of
    a process killed while it asks goes stale like any other."""

    SHARED_SEED = (optuna.samplers.QMCSampler,)

    def __init__(self, build: Any, seed: int | None) -> None:
        self.build, self.seed, self.number = build, seed, None
        self.sampler: optuna.samplers.BaseSampler = build(seed)
        self.heartbeat: Any = None  # src.sweeps.coordination.Heartbeat

    @property
    def counts_in_study(self) -> bool:
        """Whether the sampler numbers its draws by a count it keeps in the study (QMC)."""
        return isinstance(self.sampler, self.SHARED_SEED)

    def _for(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.BaseSampler:
        if self.seed is not None and trial.number != self.number and not isinstance(self.sampler, self.SHARED_SEED):
            self.sampler, self.number = self.build(trial_seed(self.seed, trial.number)), trial.number
        return self.sampler

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.heartbeat is not None and self.heartbeat.enabled:
            storage = self.heartbeat.storage
            study_id = storage.get_study_id_from_name(study.study_name)
            self.heartbeat.add(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))
        self._for(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: Any, values: Any) -> None:
        self._for(trial).after_trial(study, trial, state, values)


def search_sampler(setting: Any, seed: int | None) -> SearchSampler:
    """The search's sampler (`make_sampler`'s) drawn per trial from its seed: the sampler config's own, else `seed`."""
    config = None if isinstance(setting, str) or setting is None else dict(setting)
    if config is not None and config.get("seed") is not None:
        seed = config.pop("seed")
    return SearchSampler(lambda s: make_sampler(setting if config is None else config, s), seed)


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
    # A running trial may hold some params only, and so may a failed one (its process killed while it asked).
    for trial in study.get_trials(deepcopy=False, states=FINISHED):
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

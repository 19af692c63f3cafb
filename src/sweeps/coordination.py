"""How the search processes sharing one study keep out of each other's way: a lock around counting the
study and adding its trials, and the heartbeat that tells a live process's trials from a dead one's.

The ask lock (`ask_lock(url, study_name)`): one process at a time fails the stale trials, counts the study
and adds its new trials, so processes that ask at the same moment never add trials beyond `n_trials`.
PostgreSQL: a session advisory lock (`pg_advisory_lock`); MySQL: `GET_LOCK`; a SQLite file and a journal
file: an exclusive `flock` on `<file>.ask.lock` beside it. The server or the kernel releases the lock of a
process that dies. Only the count and the creation of the trials are locked: the parameters are drawn
afterwards. Other databases have no lock (processes asking at once may add a trial beyond `n_trials`).

The heartbeat (`Heartbeat`): one thread per search records, four times per `heartbeat_s`, that this process
still holds its trials, from the moment a trial is created (while its parameters are drawn too) until the
study is told how it ended. A failed write (a busy server) is logged and tried again at the next beat.
Another process fails a trial whose last heartbeat is older than `2 * heartbeat_s`, so this process must
stall for about 1.75 x heartbeat_s (swapped out, paused, starved of CPU) before its live trial is failed.

A process killed inside the ask lock may leave a trial created but not yet given its first heartbeat, which
no heartbeat check would ever fail: `PendingAsk` notes the trials an ask may take in the study's system
attributes before it asks and clears the note after; the next process to take the lock and find the note
records one heartbeat for each such trial still running, so that it goes stale like any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

log = logging.getLogger(__name__)
BEATS_PER_INTERVAL = 4
PENDING = "search:asking"  # the study system attribute of an ask in progress


def _lock_key(study_name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"optuna ask {study_name}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as handle:  # closing the file (or the process dying) releases the lock
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class _DatabaseLock:
    """A lock held by one connection of the database server: released by the server when the connection
    ends, so a killed process holds it no longer."""

    def __init__(self, url: str, study_name: str) -> None:
        self.engine = sqlalchemy.create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True,
                                               isolation_level="AUTOCOMMIT")
        if url.startswith("postgresql"):
            self.take = sqlalchemy.text("SELECT pg_advisory_lock(:key)")
            self.give = sqlalchemy.text("SELECT pg_advisory_unlock(:key)")
            self.key: Any = _lock_key(study_name)
        else:  # MySQL: a named lock of at most 64 characters; -1 waits without a limit
            self.take = sqlalchemy.text("SELECT GET_LOCK(:key, -1)")
            self.give = sqlalchemy.text("SELECT RELEASE_LOCK(:key)")
            self.key = f"optuna_ask_{hashlib.sha256(study_name.encode()).hexdigest()[:40]}"

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self.engine.connect() as connection:
            connection.execute(self.take, {"key": self.key})
            try:
                yield
            finally:
                connection.execute(self.give, {"key": self.key})


def ask_lock(url: str, study_name: str) -> Any:
    """A callable giving the context in which one process at a time counts the study `study_name` in `url`
    and adds trials to it (a no-op where the storage has no lock)."""
    for prefix in ("sqlite:///", "journal:"):
        path = url.removeprefix(prefix)
        if url.startswith(prefix) and path and path != ":memory:" and not path.startswith("file:"):
            lock_file = Path(path).expanduser().with_name(Path(path).name + ".ask.lock")
            return lambda: _file_lock(lock_file)
    if url.startswith(("postgresql", "mysql")):
        return _DatabaseLock(url, study_name)
    return contextlib.nullcontext


class Heartbeat:
    """Records every `interval_s / 4` that this process holds its trials (a database storage with heartbeats;
    otherwise it does nothing). `add` records a trial's first heartbeat at once; `discard` once it was told."""

    def __init__(self, storage: Any, interval_s: int | None) -> None:
        self.storage, self.interval_s = storage, interval_s
        self.enabled = bool(interval_s) and callable(getattr(storage, "record_heartbeat", None))
        self.trial_ids: set[int] = set()
        self.guard = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _record(self, trial_id: int) -> bool:
        try:
            self.storage.record_heartbeat(trial_id)
            return True
        except Exception as exc:  # noqa: BLE001  (a busy or restarting server: the next beat tries again)
            log.warning(f"Could not record the heartbeat of trial id {trial_id} ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:160]}); trying again at the next beat")
            return False

    def _beat(self) -> None:
        assert self.interval_s
        last = time.monotonic()
        while not self.stop.wait(self.interval_s / BEATS_PER_INTERVAL):
            with self.guard:
                held = sorted(self.trial_ids)
            if held and all(self._record(trial_id) for trial_id in held):
                now = time.monotonic()
                if now - last > self.interval_s:
                    log.warning(f"Heartbeats of trials {held} came {now - last:.1f} s apart (this process stalled); "
                                f"past 2 x heartbeat_s ({2 * self.interval_s} s) other processes fail its trials: "
                                "raise hydra.sweeper.heartbeat_s on a loaded machine.")
                last = now
            elif not held:
                last = time.monotonic()

    def add(self, trial_id: int) -> None:
        if not self.enabled:
            return
        self._record(trial_id)
        with self.guard:
            self.trial_ids.add(trial_id)
            if self.thread is None:
                self.thread = threading.Thread(target=self._beat, daemon=True, name="search-heartbeat")
                self.thread.start()

    def discard(self, *trial_ids: int) -> None:
        with self.guard:
            self.trial_ids.difference_update(trial_ids)

    def close(self) -> None:
        self.stop.set()


class PendingAsk:
    """Within the ask lock: recover the trials of a process that died while asking, then note this ask
    (the study's trial count and its queued trials: those this ask may create or take) until it is done."""

    def __init__(self, study: optuna.Study, storage: Any, study_id: int, heartbeat: Heartbeat) -> None:
        self.study, self.storage, self.study_id, self.heartbeat = study, storage, study_id, heartbeat

    def __enter__(self) -> PendingAsk:
        if not self.heartbeat.enabled:
            return self
        left = self.storage.get_study_system_attrs(self.study_id).get(PENDING)
        trials = self.study.get_trials(deepcopy=False)
        if left:  # the process that asked last died inside the lock: its trials may have no heartbeat
            for trial in trials:
                mine = trial.number >= left["from"] or trial.number in left["queued"]
                if trial.state == TrialState.RUNNING and mine:
                    log.info(f"Trial {trial.number} was being asked by a process that died; it is failed and "
                             f"queued again after 2 x heartbeat_s without a heartbeat")
                    self.storage.record_heartbeat(
                        self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number))
        queued = [t.number for t in trials if t.state == TrialState.WAITING]
        self.storage.set_study_system_attr(self.study_id, PENDING, {"from": len(trials), "queued": queued})
        return self

    def __exit__(self, kind: Any, *exc: object) -> None:
        if self.heartbeat.enabled and kind is None:  # a failed ask leaves the note: its trials are recovered
            self.storage.set_study_system_attr(self.study_id, PENDING, None)

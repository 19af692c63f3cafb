"""Search processes sharing one study at once, on a real PostgreSQL server and on a SQLite file: a process
stopped while it draws a trial's parameters (its trial failed and queued again by another process meanwhile)
goes on and asks again; many processes of several search threads each, started at once, never add trials
beyond `n_trials`, also with one of them killed (SIGKILL) mid-way, and leave no retry waiting.

The many-worker tests run the project's search loop (src/sweeps/: `open_storage`, `open_study`, the search
sampler, `next_trials`, `tell`, `wait_for_others`) with a 0.3 s computation in place of a Hydra job, in
forked processes of a few threads each (every thread a search of its own, as a process would be)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import optuna
import pytest

from tests.conftest import ROOT
from tests.test_optuna_search_cli import SEARCH, postgres_url, states  # noqa: F401  (postgres_url: a fixture)

SPACE = {"optimizer.lr": "tag(log, interval(0.0001, 0.1))", "model.net.dropout": "interval(0.0, 0.5)",
         "data.batch_size": "choice(32, 64, 128)"}


def storage_for(request, tmp_path: Path, storage: str) -> str:
    return request.getfixturevalue("postgres_url") if storage == "postgresql" else f"sqlite:///{tmp_path}/studies.db"


@pytest.mark.parametrize("storage", ["postgresql", "sqlite"])
def test_a_search_stopped_while_drawing_parameters_goes_on_when_its_trial_was_failed(request, cli, tmp_path, storage):
    # Process A stops (SIGSTOP) while it draws trial 1's parameters; B, started then with the same command,
    # fails trial 1 once its heartbeat is 2 s old, runs its retry and ends the study. A, continued, finds its
    # trial failed: it asks again (nothing is left) and ends without an error.
    url = storage_for(request, tmp_path, storage)
    marker = tmp_path / "stopped"
    command = [*SEARCH, "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=none", "hydra.sweeper.heartbeat_s=1",
               f"hydra.sweeper.storage={url}", "~hydra.sweeper.sampler",
               "+hydra.sweeper.sampler._target_=tests.faults.StopWhileDrawing", "+hydra.sweeper.sampler.trial=1",
               f"+hydra.sweeper.sampler.marker={marker}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0")
    first = subprocess.Popen([sys.executable, "-m", "src.train", *command], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 300
        while not marker.exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert marker.exists(), first.communicate(timeout=60)[0][-3000:]
        second = cli("src.train", *command)  # while the first is stopped
    finally:
        os.kill(first.pid, signal.SIGCONT)
        output = first.communicate(timeout=600)[0]
    assert second.returncode == 0, second.output[-3000:]
    assert first.returncode == 0, output[-3000:]
    assert "Trial 1 was failed by another process while this one drew its parameters" in output, output[-3000:]
    study = optuna.load_study(study_name="digits_mlp", storage=url)
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"], states(study)  # n_trials, no more
    retries = [t.number for t in study.trials if t.system_attrs.get("failed_trial") == 1]
    assert len(retries) == 1 and retries[0] > 1  # the stopped process's trial ran again, once


def search_worker(url: str, n_trials: int, heartbeat_s: int, threads: int, events: Path) -> None:
    """One forked process: `threads` searches of their own on the study, started together."""
    from src.sweeps.search import Search, next_trials, tell, wait_for_others
    from src.sweeps.space import search_space
    from src.sweeps.study import make_pruner, open_storage, open_study, search_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    barrier, errors = threading.Barrier(threads), []

    def search() -> None:
        try:
            storage = open_storage(url, heartbeat_s)
            space, _ = search_space(SPACE, [])
            study = open_study(storage, "at_once", url, ["maximize"], search_sampler("tpe", 7), make_pruner("none"),
                               space)
            run = Search(study, storage, space, [], ["value"], events, n_trials, 1, heartbeat_s, 3, url=url)
            barrier.wait()
            while True:
                trials = next_trials(run)
                if not trials:
                    if wait_for_others(run):
                        continue
                    return
                (trial,) = trials
                (events / f"asked-{os.getpid()}-{trial.number}").touch()
                time.sleep(0.3)
                tell(study, trial, values=[-abs(trial.params["optimizer.lr"] - 0.01)])
                run.heartbeat.discard(run.trial_id(trial))
        except BaseException:  # noqa: BLE001  (recorded for the test to show)
            errors.append(traceback.format_exc())

    workers = [threading.Thread(target=search) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        (events / f"errors-{os.getpid()}").write_text("\n".join(errors))
    os._exit(1 if errors else 0)


def start_workers(url: str, n_trials: int, processes: int, threads: int, events: Path) -> list:
    events.mkdir()
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=search_worker, args=(url, n_trials, 1, threads, events)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    return workers


def check_study(url: str, n_trials: int, events: Path) -> list[optuna.trial.FrozenTrial]:
    errors = "\n".join(p.read_text() for p in events.glob("errors-*"))
    assert not errors, errors[-3000:]
    trials = optuna.load_study(study_name="at_once", storage=url).get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == n_trials, states_of(trials)  # n_trials exactly: none beyond it
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")], states_of(trials)
    assert [t.number for t in trials] == list(range(len(trials)))
    complete = [tuple(sorted(t.params.items())) for t in trials
                if len(t.params) == len(SPACE) and "failed_trial" not in t.system_attrs]
    assert len(complete) == len(set(complete)), complete  # retries aside, no parameters twice
    return trials


def states_of(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    return [t.state.name for t in trials]


@pytest.mark.parametrize("storage", ["postgresql", "sqlite"])
def test_searches_that_ask_at_the_same_moment_add_no_trial_beyond_n_trials(request, tmp_path, storage):
    # 12 searches (3 processes of 4 threads) released at once on a study of 3 trials: each counts the study
    # and asks at the same moment.
    url = storage_for(request, tmp_path, storage)
    workers = start_workers(url, 3, processes=3, threads=4, events=tmp_path / "events")
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0, 0], [p.read_text()[-2000:] for p in (tmp_path / "events").glob("e*")]
    trials = check_study(url, 3, tmp_path / "events")
    assert states_of(trials) == ["COMPLETE"] * 3


@pytest.mark.parametrize("storage", ["postgresql", "sqlite"])
def test_a_search_process_killed_mid_way_leaves_no_trial_beyond_n_trials_and_no_retry_waiting(request, tmp_path,
                                                                                             storage):
    # 4 processes of 3 searches each on a study of 16 trials (heartbeat_s 1); the first is killed with SIGKILL
    # once it has asked two trials: its running trials are failed after 2 s and run again by the others.
    url = storage_for(request, tmp_path, storage)
    events = tmp_path / "events"
    workers = start_workers(url, 16, processes=4, threads=3, events=events)
    victim, deadline = workers[0], time.time() + 300
    while len(list(events.glob(f"asked-{victim.pid}-*"))) < 2 and victim.is_alive() and time.time() < deadline:
        time.sleep(0.01)
    assert victim.is_alive(), "the process to kill ended before asking two trials"
    os.kill(victim.pid, signal.SIGKILL)
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [-signal.SIGKILL, 0, 0, 0], list(events.glob("errors-*"))
    trials = check_study(url, 16, events)
    failed = [t.number for t in trials if t.state.name == "FAIL"]
    retried = {t.system_attrs["retry_history"][-1] for t in trials if "retry_history" in t.system_attrs}
    assert failed and set(failed) <= retried, (failed, retried)  # the killed process's trials ran again

"""Search scale benchmark: many search workers on one Optuna study in PostgreSQL, a fifth of them killed.

    .venv/bin/python -m benchmarks.search_scale                 # 20 processes x 5 threads = 100 workers, 4 killed
    .venv/bin/python -m benchmarks.search_scale --processes 4 --threads 5 --trials 60 --kills 1   # a smoke test

A throwaway PostgreSQL cluster (Debian's initdb and pg_ctl, as `nobody` when run as root) listens on a free
port of 127.0.0.1. `--processes` processes are forked at once, each running `--threads` workers in threads
(workers = processes x threads: fewer interpreters on a small machine); every worker is a search of its own,
as a search process is: it opens the study through the project's own code (src/sweeps/study.py:
`open_storage` creating the tables of the new database, `open_study`, the search sampler with the same seed
in every worker, the median pruner) and runs the search loop of src/sweeps/search.py (`next_trials` under
the study's ask lock, the search's `Heartbeat`, `tell`, `wait_for_others`) with a simulated training in place
of a Hydra job: 4 epochs of 0.5-2.5 s (`--epoch-s`), each reported to the trial (`report`, `should_prune`), then `tell`.
`--kills` processes are killed with SIGKILL, with all their workers: one in its first seconds (while it
creates the tables or asks), the others when the study has finished a random share of its trials
and one of their workers runs a trial.

Checked over the whole run: no lost trial (the study ends with its `--trials` complete or pruned trials, none
running or waiting, and every failed trial retried unless its retries ran out); the study ends at n_trials
(none beyond it, no retry left waiting); no trial number twice (and none told by two workers); no parameters
twice (among the trials that drew every parameter, retries excepted: they keep theirs on purpose; a trial
failed while it drew its parameters holds only some); no trial of a killed worker running longer than
2 x the heartbeat (plus the time until a live worker next asks) after the kill; every retry chain at most 3
long; no worker failed. Measured: asks and tells per second, peak database connections (pg_stat_activity).
Prints a table and writes benchmarks/results/search_scale-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SPACE = {"optimizer.lr": "tag(log, interval(0.0001, 0.1))", "optimizer.weight_decay": "interval(0.0, 0.001)",
         "model.net.dropout": "interval(0.0, 0.5)", "data.batch_size": "choice(32, 64, 128)"}
EPOCHS, MAX_RETRY = 4, 3


@contextmanager
def postgres(max_connections: int):
    """The URL of a new PostgreSQL cluster in a temporary folder on a free localhost port; removed afterwards."""
    found = shutil.which("initdb")
    binaries = Path(found).resolve().parent if found else max(Path("/usr/lib/postgresql").glob("*/bin"))
    folder = Path(tempfile.mkdtemp(prefix="search-scale-pg-"))
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(folder, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    try:
        subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections={max_connections}",
                        "start"], check=True, capture_output=True, timeout=120)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def worker(index: int, url: str, args: argparse.Namespace, events: Path) -> None:
    """One search worker: the project's study code, a simulated training per trial; each ask and tell
    appended (and flushed) to `events` as it happens."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from src.sweeps.search import Search, next_trials, tell, wait_for_others
    from src.sweeps.space import search_space
    from src.sweeps.study import make_pruner, open_storage, open_study, search_sampler

    rng = random.Random(args.seed * 100_003 + index)
    log = events.open("a", buffering=1)
    space, _ = search_space(SPACE, [])
    storage = open_storage(url, args.heartbeat)
    sampler = search_sampler("tpe", args.seed)  # the same seed in every worker, as a config sets it
    pruner = make_pruner("median", {"n_startup_trials": 5, "n_warmup_steps": 1})
    study = open_study(storage, "scale", url, ["maximize"], sampler, pruner, space)
    search = Search(study, storage, space, [], ["value"], events.parent, args.trials, 1, args.heartbeat, MAX_RETRY,
                    url=url)
    while True:
        trials = next_trials(search)
        if not trials:
            if wait_for_others(search):
                continue
            break
        trial = trials[0]
        log.write(json.dumps({"event": "ask", "trial": trial.number, "t": time.time()}) + "\n")
        quality = -abs(math.log10(trial.params["optimizer.lr"]) + 2.5) - trial.params["model.net.dropout"]
        state, value = TrialState.COMPLETE, None
        for epoch in range(1, EPOCHS + 1):
            time.sleep(rng.uniform(*args.epoch_s))
            value = quality * (1 + 1 / epoch) + rng.gauss(0, 0.05)
            try:
                trial.report(value, epoch)
                if trial.should_prune():
                    state = TrialState.PRUNED
                    break
            except UpdateFinishedTrialError:  # failed by another worker (a late heartbeat), as the job stops
                break
        tell(study, trial, **({"values": value} if state == TrialState.COMPLETE else {"state": state}))
        search.heartbeat.discard(search.trial_id(trial))
        log.write(json.dumps({"event": "tell", "trial": trial.number, "t": time.time()}) + "\n")
    search.heartbeat.close()


def process(first: int, url: str, args: argparse.Namespace, events: list[Path]) -> int:
    """One forked process running workers `first` ... `first + threads - 1` in threads; 1 if one failed."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The search's own filter of this warning is not thread-safe (warnings.catch_warnings): set it once here.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with")
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    failed = []

    def run_worker(index: int) -> None:
        try:
            worker(index, url, args, events[index])
        except BaseException as exc:  # noqa: BLE001  (a worker's failure is counted, not hidden)
            print(f"worker {index}: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}", file=sys.stderr,
                  flush=True)
            failed.append(index)

    threads = [threading.Thread(target=run_worker, args=(first + k,)) for k in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 1 if failed else 0


def monitor(url: str):
    """(connections to the server now, finished trials of the study) through one connection of its own."""
    import psycopg

    conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)

    def sample() -> tuple[int, int]:
        connections = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                   "AND pid <> pg_backend_pid()").fetchone()[0]
        try:
            done = conn.execute("SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')").fetchone()[0]
        except psycopg.errors.UndefinedTable:  # not created yet
            done = 0
        return connections, done

    return conn, sample


def run(args: argparse.Namespace) -> dict:
    import optuna

    import src.sweeps.search  # noqa: F401  (imported once, before the workers are forked)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(args.seed)
    # Each worker: the storage's connections (its thread's and the heartbeat thread's) and the ask lock's.
    with postgres(max_connections=4 * args.workers + 20) as url, tempfile.TemporaryDirectory() as tmp:
        events = [Path(tmp) / f"{i}.jsonl" for i in range(args.workers)]
        started = time.time()
        pids = []
        for p in range(args.processes):  # all at once, on a new database
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = process(p * args.threads, url, args, events)
                finally:
                    os._exit(code)
            pids.append(pid)
        victims = rng.sample(range(args.processes), args.kills)
        early = min(1, args.kills)  # killed in their first seconds: creating the tables, asking
        plan = [("time", rng.uniform(0.5, 6.0), v) for v in victims[:early]]
        plan += [("done", rng.uniform(0.05, 0.8) * args.trials, v) for v in victims[early:]]
        conn, sample = None, None
        kills, exits, peak, deadline = {}, {}, 0, started + args.deadline
        while len(exits) < args.processes and time.time() < deadline:
            if sample is None:
                try:
                    conn, sample = monitor(url)
                except Exception:  # noqa: BLE001  (the server is busy with the first connections: next round)
                    pass
            connections, done = sample() if sample else (0, 0)
            peak = max(peak, connections)
            for kind, at, victim in list(plan):
                if kind == "done" and done >= at and not running(events, victim, args.threads):
                    continue  # none of its workers holds a trial now: wait for one that does
                if (kind == "time" and time.time() - started >= at) or (kind == "done" and done >= at):
                    time.sleep(rng.uniform(0, 0.3))  # a random moment of its loop
                    if pids[victim] not in exits:
                        os.kill(pids[victim], signal.SIGKILL)
                        kills[victim] = time.time()
                    plan.remove((kind, at, victim))
            for pid in pids:
                if pid not in exits:
                    reaped, status = os.waitpid(pid, os.WNOHANG)
                    if reaped:
                        exits[pid] = os.waitstatus_to_exitcode(status)
            time.sleep(0.2)
        finished = len(exits) == args.processes
        for pid in pids:  # past the deadline: stop the rest
            if pid not in exits:
                os.kill(pid, signal.SIGKILL)
                exits[pid] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        ended = time.time()
        if conn is not None:
            conn.close()
        return check(args, url, events, pids, kills, exits, peak, started, ended, finished)


def running(events: list[Path], victim: int, threads: int) -> bool:
    """Whether a worker of process `victim` has asked a trial it has not told yet."""
    for index in range(victim * threads, (victim + 1) * threads):
        lines = events[index].read_text().splitlines() if events[index].exists() else []
        if lines and lines[-1].endswith("}") and json.loads(lines[-1])["event"] == "ask":
            return True
    return False


def check(args, url, events, pids, kills, exits, peak, started, ended, finished) -> dict:  # noqa: PLR0913
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name="scale", storage=url)
    trials = study.get_trials(deepcopy=False)
    log = {i: [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
           if path.exists() else [] for i, path in enumerate(events)}
    asks = [e for es in log.values() for e in es if e["event"] == "ask"]
    tells = [e for es in log.values() for e in es if e["event"] == "tell"]
    states = [t.state for t in trials]
    done = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    # The trial each retry stands for: the last of its retry history (a retry of a retry names the first).
    retried = {t.system_attrs["retry_history"][-1] for t in trials if t.system_attrs.get("retry_history")}
    retried |= {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    retry_chain = max((len(t.system_attrs.get("retry_history", [])) for t in trials), default=0)
    unretried = [t.number for t in trials if t.state == TrialState.FAIL and t.number not in retried
                 and len(t.system_attrs.get("retry_history", [])) < MAX_RETRY]
    told = [e["trial"] for e in tells]
    drew = [t for t in trials if len(t.params) == len(SPACE) and "failed_trial" not in t.system_attrs]
    own = [tuple(sorted(t.params.items())) for t in drew]
    twice = sorted({t.number for t in drew if own.count(tuple(sorted(t.params.items()))) > 1})
    partial = [t.number for t in trials if len(t.params) < len(SPACE)]  # failed while drawing its parameters
    # A killed worker's trial: asked, never told; how long it stayed RUNNING after the kill.
    running_after_kill = []
    for victim, at in kills.items():
        for index in range(victim * args.threads, (victim + 1) * args.threads):
            mine = {e["trial"] for e in log[index] if e["event"] == "ask"} - {e["trial"] for e in log[index]
                                                                             if e["event"] == "tell"}
            for number in mine:
                t = trials[number]
                end = t.datetime_complete.timestamp() if t.datetime_complete else ended
                running_after_kill.append(end - at)
    worst = max(running_after_kill, default=0.0)
    crashed = [code for pid, code in exits.items() if code != 0 and pids.index(pid) not in kills]
    waiting = states.count(TrialState.WAITING)
    checks = {
        "finished within the deadline": finished,
        "no worker failed (other than the killed)": not crashed,
        "no lost trial": done >= args.trials and not unretried
        and not any(s in (TrialState.RUNNING, TrialState.WAITING) for s in states),
        "study ends at n_trials (none beyond, no retry waiting)": done == args.trials and not waiting,
        "no trial number twice": [t.number for t in trials] == list(range(len(trials))) and len(told) == len(set(told)),
        "no parameters twice": len(own) == len(set(own)),
        "no trial RUNNING after 2 x heartbeat (+ the next ask)": worst <= 2 * args.heartbeat + 2.0,
        f"every retry bounded (<= {MAX_RETRY})": retry_chain <= MAX_RETRY,
    }
    span = max((e["t"] for e in tells), default=ended) - started
    return {
        "workers": args.workers, "processes": args.processes, "threads_per_process": args.threads,
        "processes_killed": len(kills), "killed": len(kills) * args.threads, "trials": args.trials,
        "heartbeat_s": args.heartbeat,
        "wall_s": round(ended - started, 1), "trials_in_study": len(trials),
        "states": {s.name: states.count(s) for s in TrialState if states.count(s)},
        "finished_beyond_n_trials": done - args.trials,  # processes that counted and asked at the same moment
        "asks": len(asks), "tells": len(tells), "asks_per_s": round(len(asks) / span, 2),
        "tells_per_s": round(len(tells) / span, 2), "peak_connections": peak,
        "longest_running_after_kill_s": round(worst, 2), "longest_retry_chain": retry_chain,
        "worker_process_errors": len(crashed), "trials_with_parameters_asked_twice": twice,
        "trials_failed_while_drawing_parameters": partial, "retries_left_waiting": waiting, "checks": checks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=20, help="worker processes, forked at once")
    parser.add_argument("--threads", type=int, default=5, help="workers (searches of their own) per process")
    parser.add_argument("--kills", type=int, default=None, help="processes killed with SIGKILL (default: a fifth)")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--heartbeat", type=int, default=10, help="heartbeat_s of every worker")
    parser.add_argument("--epoch-s", type=float, nargs=2, default=(0.5, 2.5), help="a simulated epoch's seconds")
    parser.add_argument("--deadline", type=float, default=300, help="seconds before the rest is stopped")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    args.kills = args.processes // 5 if args.kills is None else args.kills
    args.workers = args.processes * args.threads
    result = run(args)
    rows = [(k, v) for k, v in result.items() if k != "checks"]
    rows += [(k, "yes" if ok else "NO") for k, ok in result["checks"].items()]
    width = max(len(k) for k, _ in rows)
    print(f"\n{'what':<{width}} | value\n{'-' * width}-|------")
    for key, value in rows:
        print(f"{key:<{width}} | {value}")
    if not args.no_write:
        import optuna
        import sqlalchemy

        command = "python -m benchmarks.search_scale " + " ".join(sys.argv[1:])
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"search_scale-{date.today().isoformat()}.json"
        machine = {"cores": os.cpu_count(), "python": platform.python_version(), "optuna": optuna.__version__,
                   "sqlalchemy": sqlalchemy.__version__, "platform": platform.platform(),
                   "load_average_after": os.getloadavg(), "when": datetime.now().isoformat(timespec="seconds")}
        path.write_text(json.dumps({"command": command, "machine": machine, **result}, indent=2, default=str) + "\n")
        print(f"\nwrote {path.relative_to(ROOT)}")
    sys.exit(0 if all(result["checks"].values()) else 1)


if __name__ == "__main__":
    main()

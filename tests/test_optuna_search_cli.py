"""Optuna searches through the CLI as a user types them (`hparams_search=digits_optuna`, 1-epoch trials on
the 8x8 digits): a search runs offline in one sweep folder, its results beside its trials; a search stopped
by SIGTERM and started again with the same command keeps its finished trials and asks new parameters; a trial
whose process was killed is failed through its heartbeat and run again; the median pruner stops hopeless trials
early (also a retried trial) and the report says so; two objectives give a Pareto front, which optuna-dashboard
serves over HTTP; sweep processes share one study in a real PostgreSQL server, three of them started at once on a
new database (and on a new SQLite file) without asking the same parameters twice; a search whose trials keep
failing stops with the reason; bad input ends in one sentence."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from tests.conftest import ROOT, assert_one_sentence

FAST = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none", "trainer.max_epochs=1",
        "trainer.limit_train_batches=8", "test=false"]
SEARCH = ["hparams_search=digits_optuna", *FAST]


def study_of(sweep: Path, name: str = "digits_mlp") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep / 'optuna.db'}")


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.trials]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_optuna_sweep_runs_offline_in_one_folder(cli):
    result = cli("src.train", "hparams_search=digits_optuna", "hydra.sweeper.n_trials=2", "trainer.max_epochs=1",
                 "callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none")
    assert result.returncode == 0, result.output[-2000:]
    (sweep,) = (result.cwd / "logs" / "train" / "multiruns").iterdir()
    results = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in results and "optimizer.lr" in results
    assert all((sweep / job / "metrics.json").is_file() for job in "01")  # the trials beside the results


def distinct(study: optuna.Study) -> bool:
    """Whether every trial that is not a retry of another asked parameters no other trial asked."""
    asked = [tuple(sorted(t.params.items())) for t in study.trials
             if "retry_of" not in t.user_attrs and "failed_trial" not in t.system_attrs]
    return len(asked) == len(set(asked))


def test_a_search_stopped_by_sigterm_continues_with_the_same_command(cli, tmp_path):
    command = [*SEARCH, "hydra.sweeper.n_trials=3", "+callbacks.signal._target_=tests.faults.SignalAt",
               "+callbacks.signal.moments=[train_batch@0:2]", "+callbacks.signal.after=1",
               f"+callbacks.signal.done_dir={tmp_path / 'sent'}"]
    stopped = cli("src.train", *command)
    assert stopped.returncode == 143, stopped.output[-2000:]
    # The stopped trial resumes through the search, not as a run of its own outside the study.
    assert "Resume the search with its own command: python -m src.train hparams_search=digits_optuna " \
        in stopped.stdout and "ckpt_path=" not in stopped.stdout, stopped.stdout[-2000:]
    sweep = tmp_path / "logs" / "train" / "multiruns" / "digits_mlp"
    assert states(study_of(sweep)) == ["COMPLETE", "FAIL", "WAITING"]  # trial 1 stopped, queued again
    finished = (sweep / "0" / "metrics.json").stat().st_mtime_ns

    again = cli("src.train", *command)  # the same command continues the study in the same folder
    assert again.returncode == 0, again.output[-3000:]
    study = study_of(sweep)
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]  # 3 trials in all, not 3 more
    assert study.trials[2].params == study.trials[1].params and study.trials[2].user_attrs["retry_of"] == 1
    assert distinct(study), [t.params for t in study.trials]  # the new trial 3 is not trial 0 asked again
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == finished  # not trained again
    assert (sweep / "1" / "checkpoints" / "interrupted.ckpt").is_file()
    other = cli("src.train", *command, "model.net.dropout=0.3")  # other overrides: another search, not this one
    assert other.returncode == 2 and "Traceback" not in other.output, other.output[-2000:]
    assert f"error: {sweep} already holds a sweep of other overrides (" in other.stderr
    assert "or name another study with hydra.sweeper.study_name=NAME (not digits_mlp)." in other.stderr


def test_a_killed_trial_is_failed_by_its_heartbeat_and_run_again(cli, tmp_path):
    command = [*SEARCH, "hydra.sweeper.n_trials=2", "hydra.sweeper.heartbeat_s=1",
               "+callbacks.signal._target_=tests.faults.SignalAt", "+callbacks.signal.moments=[train_batch@0:2]",
               "+callbacks.signal.signal=SIGKILL", "+callbacks.signal.after=1",
               f"+callbacks.signal.done_dir={tmp_path / 'sent'}"]
    killed = cli("src.train", *command)
    assert killed.returncode in (-9, 137), killed.output[-2000:]
    sweep = tmp_path / "logs" / "train" / "multiruns" / "digits_mlp"
    assert states(study_of(sweep)) == ["COMPLETE", "RUNNING"]  # nobody told the study: only the heartbeat stopped
    time.sleep(2.5)  # past the grace period (2 x heartbeat_s)
    again = cli("src.train", *command)
    assert again.returncode == 0, again.output[-3000:]
    study = study_of(sweep)
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE"]
    assert study.trials[2].params == study.trials[1].params and study.trials[2].system_attrs["failed_trial"] == 1
    report = cli("src.report", str(sweep))
    assert report.returncode == 0 and "| 2 | complete |" in report.stdout and "retry of trial 1" in report.stdout


def test_the_median_pruner_stops_hopeless_trials_and_the_report_says_when(cli, tmp_path):
    # One of the two learning rates cannot learn; the random sampler's seed 2 asks for good, hopeless, good.
    result = cli("src.train", *SEARCH, "trainer.max_epochs=2", "hydra.sweeper.n_trials=3",
                 "hydra.sweeper.sampler=random", "hydra.sweeper.seed=2",
                 "hydra.sweeper.pruner_args.n_startup_trials=1", "hydra.sweeper.pruner_args.n_warmup_steps=0",
                 "~hydra.sweeper.params", "optimizer.lr=choice(0.05,0.0000001)")
    assert result.returncode == 0, result.output[-3000:]
    sweep = tmp_path / "logs" / "train" / "multiruns" / "digits_mlp"
    study = study_of(sweep)
    for trial in study.trials:
        hopeless = trial.params["optimizer.lr"] < 1e-3
        assert trial.state.name == ("PRUNED" if hopeless else "COMPLETE"), states(study)
        assert trial.user_attrs["epochs"] == (1 if trial.state.name == "PRUNED" else 2)
    pruned = [t.number for t in study.trials if t.state.name == "PRUNED"]
    assert pruned == [1] and json.loads((sweep / str(pruned[0]) / "pruned.json").read_text())["epoch"] == 1
    report = cli("src.report", str(sweep))
    assert report.returncode == 0, report.output[-2000:]
    assert f"| {pruned[0]} | pruned |" in report.stdout and "pruned at epoch 1: val/acc_best=" in report.stdout
    assert "Best trial: " in report.stdout and "Parameter importances (Optuna's default evaluator): optimizer.lr" \
        in report.stdout
    assert "## Optuna study digits_mlp" in (sweep / "report.md").read_text()
    jobs = [[c.strip() for c in line.strip("|").split("|")] for line in report.stdout.split("## Optuna study")[0]
            .splitlines() if line.startswith("| ")]
    assert [row[-1] for row in jobs if row[1] == str(pruned[0])] == ["pruned"], jobs  # the job table says so too
    assert "optuna_trial" not in report.stdout  # how a job reaches its trial is not one of its settings


def test_a_retried_trial_that_is_pruned_says_both(cli, tmp_path):
    # Seed 10 asks for a good learning rate, then a hopeless one: trial 1 is stopped by SIGTERM, and its retry
    # (the same hopeless rate) is pruned at its first epoch.
    command = [*SEARCH, "trainer.max_epochs=2", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler=random",
               "hydra.sweeper.seed=10", "hydra.sweeper.pruner_args.n_startup_trials=1",
               "hydra.sweeper.pruner_args.n_warmup_steps=0", "~hydra.sweeper.params",
               "optimizer.lr=choice(0.05,0.0000001)", "+callbacks.signal._target_=tests.faults.SignalAt",
               "+callbacks.signal.moments=[train_batch@0:2]", "+callbacks.signal.after=1",
               f"+callbacks.signal.done_dir={tmp_path / 'sent'}"]
    stopped = cli("src.train", *command)
    assert stopped.returncode == 143, stopped.output[-2000:]
    again = cli("src.train", *command)
    assert again.returncode == 0, again.output[-3000:]
    sweep = tmp_path / "logs" / "train" / "multiruns" / "digits_mlp"
    study = study_of(sweep)
    assert states(study) == ["COMPLETE", "FAIL", "PRUNED"] and study.trials[2].params["optimizer.lr"] < 1e-3
    report = cli("src.report", str(sweep))
    assert report.returncode == 0, report.output[-2000:]
    assert "| 2 | pruned |" in report.stdout and "retry of trial 1; pruned at epoch 1: val/acc_best=" in report.stdout


def test_a_misspelt_objective_stops_the_search_after_max_failed_trials(cli, tmp_path):
    # Failed trials do not count towards n_trials: without a limit this search would never end.
    result = cli("src.train", *SEARCH, "hydra.sweeper.metrics=[val/acc_bst]", timeout=300)
    assert_one_sentence(result, "error: 3 trials of this search failed (the last, trial 2: no run recorded "
                        "val/acc_bst; the runs record ", "val/acc_best", "hydra.sweeper.max_failed_trials=N.")
    study = study_of(tmp_path / "logs" / "train" / "multiruns" / "digits_mlp")
    assert states(study) == ["FAIL"] * 3


def test_two_objectives_give_a_pareto_front_that_optuna_dashboard_serves(cli, tmp_path):
    result = cli("src.train", *SEARCH, "hydra.sweeper.n_trials=2", "hydra.sweeper.pruner=none",
                 "hydra.sweeper.direction=[maximize,minimize]", "hydra.sweeper.metrics=[val/acc_best,wall_time_s]")
    assert result.returncode == 0, result.output[-3000:]
    sweep = tmp_path / "logs" / "train" / "multiruns" / "digits_mlp"
    study = study_of(sweep)
    assert states(study) == ["COMPLETE"] * 2 and all(len(t.values) == 2 for t in study.trials)
    report = cli("src.report", str(sweep))
    assert report.returncode == 0, report.output[-2000:]
    assert "maximize val/acc_best, minimize wall_time_s" in report.stdout
    assert "Pareto front (" in report.stdout and "wall_time_s=" in report.stdout

    dashboard = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    if dashboard is None:
        pytest.skip("optuna-dashboard is not installed (pip install -e '.[dashboard]')")
    port = free_port()
    server = subprocess.Popen([dashboard, f"sqlite:///{sweep / 'optuna.db'}", "--host", "127.0.0.1", "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and answer is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    answer = json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert answer is not None, "optuna-dashboard did not answer within 60 s"
        (summary,) = answer["study_summaries"]
        assert summary["study_name"] == "digits_mlp"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", timeout=5) as r:
            detail = json.loads(r.read())
        assert len(detail["trials"]) == 2 and len(detail["best_trials"]) >= 1
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("args,said", [
    (["hydra.sweeper.pruner=medain"], "error: hydra.sweeper.pruner=medain is not a pruner; choose one of median,"),
    (["hydra.sweeper.sampler=tpee"], "error: hydra.sweeper.sampler=tpee is not a sampler; choose one of tpe,"),
    (["hydra.sweeper.pruner=hyperband"],  # the config's median arguments
     "error: hydra.sweeper.pruner_args.n_startup_trials is not an argument of the hyperband pruner"),
    (["hydra.sweeper.pruner=hyperband", "~hydra.sweeper.pruner_args", "hydra.sweeper.sampler=tpee"],  # dropped: read on
     "error: hydra.sweeper.sampler=tpee is not a sampler"),
    (["+hydra.sweeper.params.model.net.dropout='intervall(0.1,0.5)'"],  # as a config file would spell it
     "error: hydra.sweeper.params.model.net.dropout: cannot read 'model.net.dropout=intervall(0.1,0.5)' (Hydra"),
    (["model.net.dropout=intervall(0.1,0.5)"],  # as typed on the command line
     "error: cannot read the override model.net.dropout=intervall(0.1,0.5): Unknown function 'intervall' (known:"),
    (["model.net.dropout=interval(0.1,0.5"], "error: cannot read the override model.net.dropout=interval(0.1,0.5: "),
])
def test_bad_search_settings_end_in_one_sentence(cli_in_process, args, said):
    result = cli_in_process("src.train", *SEARCH, *args)
    assert result.returncode == 2 and "Traceback" not in result.output, result.output[-2000:]
    assert said in result.stderr and result.stderr.count("error:") == 1


def read_only_folder(folder: Path) -> Path:
    """`folder`, made read-only for this user (root ignores permissions: the folder is made immutable)."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("running as root where chattr +i cannot make a folder read-only")
    return folder


@pytest.mark.parametrize("case", ["journal_read_only", "heartbeat", "sqlite_no_folder", "dialect", "driver"])
def test_each_storage_mistake_gets_its_own_advice(cli_in_process, tmp_path, case):
    if case == "journal_read_only":
        folder = read_only_folder(tmp_path / "studies")
        try:
            result = cli_in_process("src.train", *SEARCH, f"hydra.sweeper.storage=journal:{folder}/digits.log")
        finally:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        said = [f"error: hydra.sweeper.storage=journal:{folder}/digits.log: cannot write the journal file",
                "name a journal file in a folder this user may write to."]
    elif case == "heartbeat":
        result = cli_in_process("src.train", *SEARCH, "hydra.sweeper.heartbeat_s=-5")
        said = ["error: hydra.sweeper.heartbeat_s=-5 is not a whole number of seconds above 0; give one (e.g. 60)"]
    elif case == "sqlite_no_folder":
        result = cli_in_process("src.train", *SEARCH, f"hydra.sweeper.storage=sqlite:///{tmp_path}/none/s.db")
        said = [f"there is no folder {tmp_path}/none for the SQLite file; create it"]
    elif case == "dialect":
        result = cli_in_process("src.train", *SEARCH, "hydra.sweeper.storage=postgress://me@127.0.0.1/studies")
        said = ["error: hydra.sweeper.storage=postgress://me@127.0.0.1/studies is not a database URL SQLAlchemy reads",
                "e.g. postgresql+psycopg://me@dbhost:5432/studies."]
    else:
        if importlib.util.find_spec("pymysql") is not None:
            pytest.skip("PyMySQL is installed: no missing driver to name")
        result = cli_in_process("src.train", *SEARCH, "hydra.sweeper.storage=mysql+pymysql://me@127.0.0.1/studies")
        said = ["error: the database driver for mysql+pymysql://me@127.0.0.1/studies is not installed (",
                "MySQL: pip install pymysql"]
    line = assert_one_sentence(result, *said)
    assert "check that the server runs" not in line  # not the advice for a server that cannot be reached


def test_an_unreachable_database_and_a_study_of_other_settings_end_in_one_sentence(cli_in_process, tmp_path):
    url = f"postgresql+psycopg://optuna@127.0.0.1:{free_port()}/studies"  # nothing listens there
    started = time.monotonic()
    result = cli_in_process("src.train", *SEARCH, f"hydra.sweeper.storage={url}")
    assert result.returncode == 2 and "Traceback" not in result.output, result.output[-2000:]
    assert f"error: cannot open the study database {url} (OperationalError: " in result.stderr
    assert "check that the server runs and is reachable at that host and port" in result.stderr
    assert time.monotonic() - started < 30

    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="digits_mlp", storage=storage, direction="minimize")
    result = cli_in_process("src.train", *SEARCH, f"hydra.sweeper.storage={storage}")
    assert result.returncode == 2 and "Traceback" not in result.output, result.output[-2000:]
    assert f"error: the study digits_mlp in {storage} optimises in direction ['minimize'], not ['maximize']" \
        in result.stderr
    other = optuna.create_study(study_name="other", storage=storage, direction="maximize")
    other.add_trial(optuna.trial.create_trial(params={"optimizer.lr": 0.1}, value=0.5, distributions={
        "optimizer.lr": optuna.distributions.FloatDistribution(0.01, 1.0)}))
    result = cli_in_process("src.train", *SEARCH, f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=other")
    assert result.returncode == 2 and "Traceback" not in result.output, result.output[-2000:]
    assert f"error: the study other in {storage} searched other parameters (model.net.dropout, " in result.stderr


# --- a real PostgreSQL server ------------------------------------------------------------------------
def postgres_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL cluster in a temporary folder on a free localhost port (as an unprivileged user
    when run as root: the server refuses root); stopped and removed afterwards."""
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (initdb not found; .ci/setup installs Debian's postgresql as root)")
    folder = Path(tempfile.mkdtemp(prefix="optuna-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
        shutil.chown(folder, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    port, data = free_port(), folder / "data"
    try:
        init = subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                              capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            pytest.skip(f"initdb could not create a cluster: {init.stderr.strip()[-300:]}")
        start = subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
                                "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                               capture_output=True, text=True, timeout=120)
        if start.returncode != 0:
            pytest.skip(f"the PostgreSQL server did not start: {start.stderr.strip()[-300:]}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True, timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_two_sweep_processes_share_one_study_in_postgresql(postgres_url, cli, tmp_path):
    command = [*SEARCH, "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner=none",
               f"hydra.sweeper.storage={postgres_url}"]
    other = tmp_path / "other"  # a second process in its own folder, as on another machine
    other.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0")
    worker = subprocess.Popen([sys.executable, "-m", "src.train", *command], cwd=other, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        result = cli("src.train", *command)  # at the same time
    finally:
        output = worker.communicate(timeout=600)[0]
    assert result.returncode == 0 and worker.returncode == 0, result.output[-2000:] + output[-2000:]
    study = optuna.load_study(study_name="digits_mlp", storage=postgres_url)
    n = len(study.trials)  # 4: one process at a time counts the study and asks, never beyond n_trials
    assert n == 4 and states(study) == ["COMPLETE"] * n
    ran = [{int(p.name) for p in (root / "logs/train/multiruns/digits_mlp").iterdir() if p.name.isdigit()}
           for root in (tmp_path, other)]
    assert ran[0] and ran[1] and not ran[0] & ran[1] and ran[0] | ran[1] == set(range(n))  # both, no trial twice
    assert distinct(study), [t.params for t in study.trials]
    report = cli("src.report", str(other / "logs/train/multiruns/digits_mlp"))
    assert report.returncode == 0, report.output[-2000:]
    assert f"{n} trials ({n} complete)" in report.stdout and all(f"| {k} | complete |" in report.stdout
                                                                for k in range(n))


@pytest.mark.parametrize("storage", ["postgresql", "sqlite"])
def test_three_processes_start_one_search_on_a_new_database_at_once(request, tmp_path, storage):
    # The commands the docs give for several processes, three times at once in one folder: the first to create
    # the database's tables is not alone, and every process seeds its sampler with the config's seed.
    url = request.getfixturevalue("postgres_url") if storage == "postgresql" else "sqlite:///studies.db"
    command = [*SEARCH, "hydra.sweeper.n_trials=6", f"hydra.sweeper.storage={url}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0")
    workers = [subprocess.Popen([sys.executable, "-m", "src.train", *command], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    sweep = tmp_path / "logs" / "train" / "multiruns" / "digits_mlp"
    study = optuna.load_study(study_name="digits_mlp", storage=url.replace("///", f"///{tmp_path}/"))
    # Exactly 6: processes that ask at the same moment take the study's ask lock in turn.
    assert states(study) == ["COMPLETE"] * 6, states(study)
    assert distinct(study), [t.params for t in study.trials]  # no process asked another's parameters
    ran = sorted(int(p.name) for p in sweep.iterdir() if p.name.isdigit())
    assert ran == list(range(len(study.trials)))


@pytest.mark.parametrize("search", sorted(p.stem for p in (ROOT / "conf" / "hparams_search").glob("*.yaml")))
def test_every_hparams_search_config_uses_the_optuna_sweeper_and_reads(search):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from src.sweeps.space import search_space
    from src.sweeps.study import make_pruner, make_sampler

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.classify_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["dir"].endswith("/${hydra.sweeper.study_name}")
    space, fixed = search_space(sweeper.params, [])
    assert "optimizer.lr" in space and not fixed
    assert type(make_sampler(OmegaConf.to_container(sweeper.sampler), sweeper.seed)).__name__ == "TPESampler"
    assert sweeper.max_failed_trials == 3
    assert type(make_pruner(sweeper.pruner, sweeper.pruner_args)).__name__ == "MedianPruner"

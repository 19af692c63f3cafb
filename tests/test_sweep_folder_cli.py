"""One folder per sweep, and a sweep started again in it, through the CLI as a user types it: jobs run
in parallel processes (`hydra/launcher=local_parallel`) write into one sweep folder; a sweep stopped
by SIGTERM mid-job and started again with the same command (as a requeue would) keeps its finished
job and resumes the stopped one to the metrics of an uninterrupted job; a folder of another sweep or
run is refused. (submitit's launcher and its requeue: tests/test_submitit_requeue_cli.py.)"""

from __future__ import annotations

import csv
import json

import pytest

FAST = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none"]
KEYS = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc", "test/f1")


def metrics_of(job) -> dict:
    return json.loads((job / "metrics.json").read_text())["metrics"]


def reported_jobs(cli, sweep) -> list[str]:
    report = cli("src.report", str(sweep))
    assert report.returncode == 0, report.output[-2000:]
    return sorted(row["job"] for row in csv.DictReader(open(sweep / "report.csv")) if row["status"] == "ok")


def test_parallel_jobs_write_into_one_sweep_folder(cli):
    result = cli("src.train", "-m", "hydra/launcher=local_parallel", "optimizer.lr=0.01,0.02",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=5", *FAST)
    assert result.returncode == 0, result.output[-2000:]
    (sweep,) = (result.cwd / "logs" / "train" / "multiruns").iterdir()
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    assert all((sweep / job / "metrics.json").is_file() for job in "01")
    assert reported_jobs(cli, sweep) == ["0", "1"]


def test_a_sweep_stopped_by_sigterm_and_started_again_resumes_the_stopped_job(cli, tmp_path):
    sweep = tmp_path / "sweep"
    # Job 1 is job 0 plus a SIGTERM between two training batches of its second epoch.
    command = ["-m", f"hydra.sweep.dir={sweep}", "+callbacks.signal._target_=tests.faults.SignalAt",
               "+callbacks.signal.moments=[],[train_batch@1:5]", f"+callbacks.signal.done_dir={tmp_path / 'sent'}",
               *FAST, "model.net.dropout=0.2", "trainer.deterministic=true", "seed=3", "trainer.max_epochs=2"]
    stopped = cli("src.train", *command)
    assert stopped.returncode == 143, stopped.output[-2000:]
    assert (sweep / "0" / "metrics.json").is_file() and not (sweep / "1" / "metrics.json").exists()
    assert (sweep / "1" / "checkpoints" / "interrupted.ckpt").is_file()

    again = cli("src.train", *command)  # the same command, as a requeue (or the user) starts it
    assert again.returncode == 0, again.output[-3000:]
    assert f"{sweep / '0'} holds this run finished already, so it is not trained again: test: acc=" in again.stdout
    assert f"Resuming from {sweep / '1' / 'checkpoints' / 'interrupted.ckpt'}: logs and checkpoints continue in " \
           f"{sweep / '1'}" in again.stdout
    uninterrupted, resumed = metrics_of(sweep / "0"), metrics_of(sweep / "1")
    for key in KEYS:
        assert resumed[key] == pytest.approx(uninterrupted[key], abs=1e-6), key
    assert reported_jobs(cli, sweep) == ["0", "1"]

    other = cli("src.train", "-m", f"hydra.sweep.dir={sweep}", *FAST, "optimizer.lr=0.1,0.2")
    assert other.returncode == 2 and "Traceback" not in other.output, other.output[-2000:]
    assert f"error: {sweep} already holds a sweep of other overrides (" in other.stderr
    one_job = cli("src.train", f"hydra.run.dir={sweep / '0'}", *FAST, "optimizer.lr=0.5")  # a job folder, reused
    assert one_job.returncode == 2 and "Traceback" not in one_job.output, one_job.output[-2000:]
    assert f"error: {sweep / '0'} already holds a run of other overrides (" in one_job.stderr
    assert metrics_of(sweep / "0") == uninterrupted  # nothing of the earlier sweep touched


"""A sweep under submitit's launcher, the local form of `hydra/launcher=slurm`, through the CLI: both
jobs in one sweep folder beside `.submitit/`, and a job sent submitit's time-limit signal (SIGUSR2)
mid-training stops after the batch in progress, saves its checkpoint, is requeued by submitit (the
same job again, as `scontrol requeue` does on a cluster) and resumes in its own folder to the
metrics of an uninterrupted job."""

from __future__ import annotations

import csv
import json

import pytest

KEYS = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc", "test/f1")


def test_a_job_signalled_before_its_time_limit_is_requeued_and_resumes(cli, tmp_path):
    # Job 1 is job 0 plus submitit's signal between two training batches of its second epoch.
    result = cli("src.train", "-m", "hydra/launcher=submitit_local", "+callbacks.signal._target_=tests.faults.SignalAt",
                 "+callbacks.signal.moments=[],[train_batch@1:5]", "+callbacks.signal.signal=SIGUSR2",
                 f"+callbacks.signal.done_dir={tmp_path / 'sent'}", "callbacks.progress_bar=null",
                 "callbacks.model_summary=null", "logger=none", "model.net.dropout=0.2", "trainer.deterministic=true",
                 "seed=3", "trainer.max_epochs=2")
    assert result.returncode == 0, result.output[-3000:]
    (sweep,) = (result.cwd / "logs" / "train" / "multiruns").iterdir()
    assert {"0", "1", ".submitit", "multirun.yaml"} <= {p.name for p in sweep.iterdir()}
    job_logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.*"))
    assert "Received SIGUSR2 (the job's time limit or pre-emption): stopping after the batch in progress" in job_logs
    assert f"saved {sweep / '1' / 'checkpoints' / 'interrupted.ckpt'}" in job_logs
    assert "Requeued job" in job_logs  # submitit's own word
    assert f"Resuming from {sweep / '1' / 'checkpoints' / 'interrupted.ckpt'}" in job_logs

    # The requeued job wrote its own record after its training ended (not one left from before the requeue).
    record, checkpoint = sweep / "1" / "metrics.json", sweep / "1" / "checkpoints" / "last.ckpt"
    assert record.stat().st_mtime_ns > checkpoint.stat().st_mtime_ns, "metrics.json is older than last.ckpt"
    uninterrupted, requeued = (json.loads((sweep / j / "metrics.json").read_text())["metrics"] for j in "01")
    for key in KEYS:
        assert requeued[key] == pytest.approx(uninterrupted[key], abs=1e-6), key

    report = cli("src.report", str(sweep))
    assert report.returncode == 0, report.output[-2000:]
    rows = csv.DictReader(open(sweep / "report.csv"))
    assert sorted(row["job"] for row in rows if row["status"] == "ok") == ["0", "1"]

"""`python -m src.report DIR` over a real sweep, as a user types it."""

from __future__ import annotations

import csv
import json

from tests.conftest import assert_one_sentence


def test_report_lists_every_job_of_a_sweep_best_first_and_failed_jobs_last(cli):
    result = cli("src.train", "-m", "optimizer.lr=0.1,0.01,-1", "trainer.max_epochs=1", "callbacks.progress_bar=null",
                 "callbacks.model_summary=null", "logger=csv")
    (sweep,) = (result.cwd / "logs" / "train" / "multiruns").iterdir()
    val_acc = {job: json.loads((sweep / job / "metrics.json").read_text())["metrics"]["val/acc"] for job in "01"}
    assert not (sweep / "2" / "metrics.json").exists()  # lr=-1 fails

    report = cli("src.report", str(sweep))
    assert report.returncode == 0, report.output[-3000:]
    rows = list(csv.DictReader(open(sweep / "report.csv")))
    best, worst = sorted("01", key=lambda job: -val_acc[job])
    assert [r["job"] for r in rows] == [best, worst, "2"]
    assert [r["rank"] for r in rows] == ["1", "2", "-"]
    assert {r["job"]: r["optimizer.lr"] for r in rows} == {"0": "0.1", "1": "0.01", "2": "-1"}
    assert float(rows[0]["val/acc"]) == val_acc[best]
    assert rows[2]["status"].startswith("failed") and rows[2]["test/acc"] == ""
    assert {"test/acc", "test/loss", "test/f1", "val/acc_best"} <= set(rows[0])
    assert "trainer.max_epochs" not in rows[0]  # shared by every job: listed above the table instead

    markdown = (sweep / "report.md").read_text()
    assert "3 runs, 2 finished, 1 failed; sorted by val/acc (max)" in markdown
    assert "`trainer.max_epochs=1`" in markdown and "| rank | job | optimizer.lr | val/acc |" in markdown
    assert markdown in report.stdout  # printed too

    only = cli("src.report", str(sweep), "--metrics", "test/loss")
    assert only.returncode == 0, only.output[-3000:]
    assert next(csv.reader(open(sweep / "report.csv"))) == ["rank", "job", "optimizer.lr", "val/acc", "test/loss",
                                                            "time (s)", "device", "status"]  # from the run record


def test_report_sorts_by_a_minimised_metric(tmp_path):
    from src.report import report

    for job, loss in (("0", 0.5), ("1", 0.2), ("10", 0.9)):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
        (tmp_path / job / ".hydra" / "config.yaml").write_text("optimized_metric: val/loss\noptimized_mode: min\n")
        (tmp_path / job / "metrics.json").write_text(json.dumps(
            {"metrics": {"val/loss": loss, "test/acc": 1 - loss}, "optimized_metric": "val/loss"}))
    (tmp_path / "3" / ".hydra").mkdir(parents=True)  # killed: no metrics.json, no failed.json
    (tmp_path / "3" / ".hydra" / "overrides.yaml").write_text("- seed=3\n")
    (tmp_path / "4").mkdir()  # failed and recorded why
    (tmp_path / "4" / "failed.json").write_text(json.dumps({"status": "failed", "error": "optimizer.lr must be..."}))
    text = report(tmp_path)
    assert "sorted by val/loss (min)" in text
    rows = list(csv.DictReader(open(tmp_path / "report.csv")))
    assert [r["job"] for r in rows] == ["1", "0", "10", "3", "4"]
    assert [r["status"] for r in rows[3:]] == ["failed (no metrics.json)", "failed: optimizer.lr must be..."]


def test_report_on_a_folder_without_runs_is_one_sentence(cli_in_process, tmp_path):
    empty = tmp_path / "sweep"
    empty.mkdir()
    assert_one_sentence(cli_in_process("src.report", str(empty)), f"{empty} holds no runs")
    assert_one_sentence(cli_in_process("src.report", str(tmp_path / "missing")), "there is no folder at")

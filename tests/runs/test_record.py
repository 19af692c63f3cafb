"""The run record: what src.train writes into a run folder is what report, reproduce and resume read."""

from __future__ import annotations

import json

from src.runs.record import completed_record, failed_record, read_record


def test_a_completed_record_reads_back_as_written_and_replaces_an_earlier_failure(tmp_path):
    failed_record("optimizer.lr must be a positive number, got -1.").write(tmp_path)
    failed = read_record(tmp_path)
    assert not failed.finished and failed.error == "optimizer.lr must be a positive number, got -1."

    config = {"seed": 7, "optimized_metric": "val/acc", "optimized_mode": "max", "model": {"_target_": "x.Y"}}
    completed_record({"val/acc": 0.75, "test/acc": 0.5}, config, ["seed=7"], "cpu", 1.23456).write(tmp_path)
    record = read_record(tmp_path)
    assert record.finished and record.metrics == {"val/acc": 0.75, "test/acc": 0.5}
    assert (record.optimized_metric, record.optimized_mode, record.seed) == ("val/acc", "max", 7)
    assert record.overrides == ["seed=7"] and record.device == "cpu" and record.wall_time_s == 1.235
    assert record.config == config and set(record.versions) >= {"python", "torch", "lightning"}
    assert record.path == tmp_path / "metrics.json" and not (tmp_path / "failed.json").exists()
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["metrics"] == {"val/acc": 0.75, "test/acc": 0.5} and on_disk["status"] == "completed"


def test_a_record_cut_short_is_no_record_and_the_failure_beside_it_is_read(tmp_path):
    assert read_record(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"metrics": {"val/acc": 0.')  # a process killed while writing
    assert read_record(tmp_path) is None
    (tmp_path / "failed.json").write_text(json.dumps({"status": "failed", "error": "out of memory"}))
    record = read_record(tmp_path)
    assert not record.finished and record.error == "out of memory" and record.metrics == {}

"""`logger=[mlflow,wandb]` on a two-job sweep, through the CLI, offline: one MLflow run and one W&B run
per job, grouped by the sweep, with the comparison parameters (those of TensorBoard's HPARAMS), the
final metrics of `metrics.json` and the confusion-matrix and prediction images. MLflow is read back with
`mlflow.search_runs` over the local store; W&B from the offline run files that `wandb sync` uploads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("wandb")

FINAL = ("train/loss", "val/loss", "val/acc", "val/acc_best", "test/acc", "test/loss", "test/f1")
CHOICES = {"model": "mlp", "data": "digits", "optimizer": "adam", "scheduler": "none", "augment": "none",
           "trainer": "default"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The sweep folder of `python -m src.train -m 'logger=[mlflow,wandb]' optimizer.lr=0.1,0.01 ...`."""
    import os

    from tests.conftest import ROOT, run_module

    cwd = tmp_path_factory.mktemp("trackers")
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "WANDB_MODE")}
    env.update(PYTHONPATH=str(ROOT), WANDB_BASE_URL="http://127.0.0.1:9")  # no key, no W&B login: offline
    proc = run_module("src.train", ["-m", "logger=[mlflow,wandb]", "callbacks=reports", "optimizer.lr=0.1,0.01",
                                    "trainer.max_epochs=1",
                                     "trainer.limit_train_batches=3", "callbacks.progress_bar=null",
                                     "callbacks.model_summary=null"], cwd, env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (folder,) = (cwd / "logs" / "train" / "multiruns").iterdir()
    return folder


def final_metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())["metrics"]


def test_mlflow_finds_one_run_per_job_with_params_metrics_and_images(sweep, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"file:{sweep.parents[2] / 'mlflow'}"
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["lightning-hydra-classify"])
    assert sorted(runs["tags.job"]) == ["0", "1"] and set(runs["tags.sweep"]) == {sweep.name}
    assert set(runs["status"]) == {"FINISHED"}
    client = MlflowClient(uri)
    for _, run in runs.iterrows():
        job = sweep / run["tags.job"]
        assert run["tags.mlflow.runName"] == f"{sweep.name}/{job.name}" and run["tags.run_dir"] == str(job)
        assert {k: run[f"params.{k}"] for k in CHOICES} == CHOICES
        assert run["params.optimizer.lr"] == ("0.1" if job.name == "0" else "0.01")
        params = [c for c in runs.columns if c.startswith("params.") and isinstance(run[c], str)]
        assert not [c for c in params if "_target_" in c or "dir" in c or c.startswith(("params.paths", "params.net"))]
        for key in FINAL:
            assert run[f"metrics.{key}"] == pytest.approx(final_metrics(job)[key], abs=1e-6), key
        images = {a.path.rsplit("_step", 1)[0] for folder in ("confusion_matrix", "predictions")
                  for a in client.list_artifacts(run["run_id"], folder) if a.path.endswith(".png")}
        assert images == {"confusion_matrix/val", "confusion_matrix/test", "predictions/test"}
    assert {json.loads((sweep / j / "tracker_runs.json").read_text())["mlflow"] for j in "01"} == set(runs["run_id"])


def wandb_records(path: Path):
    """The records of a W&B run file (`run-<id>.wandb`: a header of 7 bytes, then 32 KiB blocks of
    records, each with a 7-byte header: checksum, length, and whether it is whole or a part)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, pending = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's last bytes that cannot hold a record header
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (0, 1, 2) else pending + chunk  # 1: whole, 2: first part, 3: middle, 4: last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_wandb_offline_writes_one_run_per_job_with_the_same_params_and_metrics(sweep):
    for job in (sweep / "0", sweep / "1"):
        run_id = json.loads((job / "tracker_runs.json").read_text())["wandb"]
        (run_file,) = job.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")
        config, history, files, run = {}, {}, [], None
        for record in wandb_records(run_file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = record.run
            elif kind == "config":
                config |= {item.key: json.loads(item.value_json) for item in record.config.update}
            elif kind == "history":
                history |= {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item}
            elif kind == "files":
                files += [f.path for f in record.files.files]
        assert run.display_name == f"{sweep.name}/{job.name}" and run.run_group == sweep.name
        assert {k: config[k] for k in CHOICES} == CHOICES
        assert config["optimizer.lr"] == (0.1 if job.name == "0" else 0.01)
        assert not [k for k in config if "_target_" in k or "dir" in k]
        for key in FINAL:
            assert history[key] == pytest.approx(final_metrics(job)[key], abs=1e-6), key
        images = {f.rsplit("_", 2)[0] for f in files if f.startswith("media/images/")}
        assert images == {"media/images/confusion_matrix/val", "media/images/confusion_matrix/test",
                          "media/images/predictions/test"}

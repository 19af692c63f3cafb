"""Typed configs, cross-validation folds, unique run folders and the self-describing run record."""

import json
import os
import subprocess
import sys

import pytest
import torch

from src.data.digits import DigitsDataModule
from src.data.iris import IrisDataModule
from src.errors import UserError
from tests.conftest import ROOT, assert_one_sentence

FAST = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["+data.batchsize=32"], "data.batchsize is not a setting of src.data.digits.DigitsDataModule; "
                                 "did you mean data.batch_size?"),
        (["+model.net.hiden_sizes=[8]"], "model.net.hiden_sizes is not a setting of src.models.nets.mlp.MLP; "
                                         "did you mean model.net.hidden_sizes?"),
        (["data.batch_size=abc"], "data.batch_size='abc' has the wrong type: src.data.digits.DigitsDataModule "
                                  "expects an integer or null"),
        (["model.net.batch_norm=maybe"], "model.net.batch_norm='maybe' has the wrong type"),
        (["trainer.precision=17"], "trainer.precision=17 has the wrong type"),
        (["data.val_fraction=2"], "data.val_fraction must be between 0 and 1"),
    ],
)
def test_typed_config_rejects_typos_types_and_ranges_before_loading_data(cli_in_process, args, fragment):
    result = cli_in_process("src.train", *args, *FAST)
    assert_one_sentence(result, fragment)
    assert "CONFIG" not in result.stdout  # stopped before the run started


def test_help_lists_the_groups_and_their_choices(cli_in_process):
    result = cli_in_process("src.train", "--help")
    assert result.returncode == 0
    for line in ("model: alexnet, deep_mlp, googlenet", "data: cifar10, cifar100, csv, digits", "trainer: cpu, ddp"):
        assert line in result.stdout


def test_folds_partition_the_training_data_stratified_and_leave_test_alone():
    common = dict(name="digits", num_classes=10, input_shape=[1, 8, 8], batch_size=64, num_folds=5)
    modules = [DigitsDataModule(**common, fold=i) for i in range(5)]
    for dm in modules:
        dm.setup()
    val_rows = [tuple(map(tuple, dm.val_split.inputs.flatten(1).tolist())) for dm in modules]
    assert sum(len(v) for v in val_rows) == 1437  # every non-test image validates exactly once
    assert all(torch.equal(modules[0].test_split.inputs, dm.test_split.inputs) for dm in modules)
    counts = torch.bincount(modules[0].val_split.targets, minlength=10)
    assert counts.min() >= 27 and counts.max() <= 31  # stratified: ~10 % of each class
    with pytest.raises(UserError, match="data.fold must be between 0 and data.num_folds - 1 = 4"):
        DigitsDataModule(**common, fold=5)
    with pytest.raises(UserError, match="has a fixed one"):
        IrisDataModule(name="iris", num_classes=3, input_shape=[4], validate_on_test=True, num_folds=3).setup()


def test_cross_validation_experiment_runs_every_fold(cli):
    result = cli("src.train", "experiment=cv_iris", "trainer.max_epochs=2", *FAST)
    assert result.returncode == 0, result.output[-2000:]
    (sweep,) = (result.cwd / "logs" / "train" / "multiruns").iterdir()
    folds = sorted(json.loads((job / "metrics.json").read_text())["config"]["data"]["fold"]
                   for job in sweep.iterdir() if (job / "metrics.json").is_file())
    assert folds == [0, 1, 2, 3, 4]


def test_runs_started_together_never_share_a_folder(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "src.train", "train=false", "test=false", *FAST],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    assert len(list((tmp_path / "logs" / "train" / "runs").iterdir())) == 4


def test_run_record_describes_the_run(cli):
    result = cli("src.train", "trainer.max_epochs=1", "seed=3", *FAST)
    assert result.returncode == 0, result.output[-2000:]
    (run,) = result.run_dirs()
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "completed" and record["seed"] == 3 and record["device"] == "cpu"
    assert record["overrides"][:2] == ["trainer.max_epochs=1", "seed=3"]
    assert record["config"]["data"]["name"] == "digits" and record["config"]["seed"] == 3
    assert len(record["git"]["commit"]) == 40 and isinstance(record["git"]["dirty"], bool)
    assert record["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]  # the torch that ran
    assert record["wall_time_s"] > 0 and 0 < record["metrics"]["test/acc"] <= 1


def test_report_groups_repeats_by_their_other_overrides_with_mean_and_std(cli):
    sweep = cli("src.train", "-m", "seed=1,2", "optimizer.lr=0.01,0.02", "trainer.max_epochs=1", *FAST)
    assert sweep.returncode == 0, sweep.output[-2000:]
    (folder,) = (sweep.cwd / "logs" / "train" / "multiruns").iterdir()
    result = cli("src.report", str(folder))
    assert result.returncode == 0, result.output[-2000:]
    import csv
    import statistics

    rows = list(csv.DictReader(open(folder / "report_groups.csv")))
    assert sorted(r["optimizer.lr"] for r in rows) == ["0.01", "0.02"] and all(r["runs"] == "2" for r in rows)
    for row in rows:
        accs = [json.loads((job / "metrics.json").read_text())["metrics"]["test/acc"] for job in folder.iterdir()
                if job.name.isdigit() and f"optimizer.lr={row['optimizer.lr']}"
                in (job / ".hydra" / "overrides.yaml").read_text()]
        mean, std = (float(v) for v in row["test/acc"].split(" ± "))
        assert mean == pytest.approx(statistics.mean(accs)) and std == pytest.approx(statistics.stdev(accs))
    assert (folder / "report_groups.png").stat().st_size > 10_000
    assert "## Groups: mean ± std over seed / data.fold" in (folder / "report.md").read_text()

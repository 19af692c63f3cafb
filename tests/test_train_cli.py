"""`python -m src.train` / `src.eval` end to end, as a user types them (subprocesses, real data)."""

import json

import pytest

from tests.conftest import assert_one_sentence


@pytest.mark.slow
def test_default_job_trains_digits_logs_tensorboard_and_evaluates(cli):
    result = cli("src.train")
    assert result.returncode == 0, result.output[-3000:]
    assert "CONFIG" in result.stdout and "test: acc=" in result.stdout  # config tree + one-line summary
    metrics = result.metrics()
    assert metrics["test/acc"] >= 0.95
    (run,) = result.run_dirs()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    best = [p for p in (run / "checkpoints").glob("epoch_*.ckpt")]
    assert len(best) == 1
    assert (run / "confusion_matrix_test.csv").read_text().startswith(",pred_0,pred_1")
    assert (run / "config_tree.log").is_file() and (run / ".hydra" / "config.yaml").is_file()

    evaluated = cli("src.eval", f"ckpt_path={best[0]}")
    assert evaluated.returncode == 0, evaluated.output[-3000:]
    (report,) = (run / "eval").iterdir()  # the eval report lands next to the run it evaluates
    report_metrics = json.loads((report / "metrics.json").read_text())["metrics"]
    assert report_metrics["test/acc"] == pytest.approx(metrics["test/acc"])


def test_tensorboard_holds_scalars_hparams_and_confusion_table(cli):
    result = cli("src.train", "trainer.max_epochs=2")
    assert result.returncode == 0, result.output[-3000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = result.run_dirs()
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/f1", "test/acc", "test/recall"} <= scalars
    tensors = set(events.Tags()["tensors"])
    assert any("confusion_matrix" in t for t in tensors)  # add_text is stored as a tensor summary
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")  # the HPARAMS tab
    assert "hp/test/acc" in scalars  # final metrics beside the config, under their own names ...
    assert [e.step for e in events.Scalars("val/acc")][0] > 0  # ... so no curve starts with a step-0 copy


def test_iris_softmax_regression_reaches_090(cli):
    result = cli("src.train", "data=iris", "model=softmax_regression")
    assert result.returncode == 0, result.output[-3000:]
    assert result.metrics()["test/acc"] >= 0.9


def hparams_of(tensorboard_dir) -> tuple[dict, list[str]]:
    """TensorBoard's HPARAMS of a run, read back from its event files: ({name: value}, metric tags)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(tensorboard_dir), size_guidance={"tensors": 0}).Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    values = {k: v.string_value if v.HasField("string_value") else v.number_value for k, v in start.hparams.items()}
    return values, [m.name.tag for m in experiment.metric_infos]


def test_sweep_runs_each_job_in_its_own_folder_and_hparams_show_what_differs(cli):
    result = cli("src.train", "-m", "optimizer.lr=0.1,0.01", "trainer.max_epochs=1", "callbacks.progress_bar=null",
                 "model.net.dropout=0.1")
    assert result.returncode == 0, result.output[-3000:]
    (sweep,) = (result.cwd / "logs" / "train" / "multiruns").iterdir()  # one sweep folder
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"] and (sweep / "multirun.yaml").is_file()
    lrs = []
    for job in jobs:
        assert (job / "metrics.json").is_file()
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        lrs.append("0.1" in overrides and "lr=0.1" in overrides)
    assert lrs == [True, False]
    assert json.loads((jobs[0] / "metrics.json").read_text())["optimized_metric"] == "val/acc"

    for job, lr in zip(jobs, (0.1, 0.01)):  # HPARAMS: group choices, set and swept values, final metrics
        values, metric_tags = hparams_of(job / "tensorboard")
        assert {k: values[k] for k in ("model", "data", "optimizer", "scheduler", "augment", "trainer")} == {
            "model": "mlp", "data": "digits", "optimizer": "adam", "scheduler": "none", "augment": "none",
            "trainer": "default"}
        assert values["optimizer.lr"] == pytest.approx(lr) and values["model.net.dropout"] == pytest.approx(0.1)
        assert {"data.batch_size", "trainer.max_epochs", "seed", "optimizer.weight_decay"} <= set(values)
        assert not [k for k in values if "_target_" in k or "dir" in k or k.startswith(("paths", "callbacks"))]
        metrics = json.loads((job / "metrics.json").read_text())["metrics"]
        assert sorted(metric_tags) == sorted(f"hp/{k}" for k in metrics)  # no hp/step, hp/epoch


@pytest.mark.slow
def test_notes3_gates_perceptron_learns_and_or_nand_but_not_xor(cli):
    result = cli("src.train", "-m", "experiment=notes3_perceptron", "data.gate=and,or,nand,xor",
                 "callbacks.progress_bar=null", "logger=none")
    assert result.returncode == 0, result.output[-3000:]
    (sweep,) = (result.cwd / "logs" / "train" / "multiruns").iterdir()
    acc = {}
    for job in sorted(p for p in sweep.iterdir() if p.name.isdigit()):
        gate = [line for line in (job / ".hydra" / "overrides.yaml").read_text().splitlines() if "gate" in line]
        acc[gate[0].split("=")[-1]] = json.loads((job / "metrics.json").read_text())["metrics"]["test/acc"]
    assert acc["and"] == acc["or"] == acc["nand"] == 1.0
    assert acc["xor"] <= 0.75


@pytest.mark.slow
def test_notes3_xor_mlp_learns_xor(cli):
    result = cli("src.train", "experiment=notes3_xor_mlp", "callbacks.progress_bar=null", "logger=none")
    assert result.returncode == 0, result.output[-3000:]
    assert result.metrics()["test/acc"] == 1.0


def test_debug_fast_dev_run_and_csv_logger(cli):
    result = cli("src.train", "debug=fdr")
    assert result.returncode == 0, result.output[-3000:]
    (smoke_run,) = result.run_dirs()
    assert not (smoke_run / "test_predictions.csv").exists()  # one test batch of 360 samples: no partial file
    result = cli("src.train", "trainer=cpu", "logger=csv", "trainer.max_epochs=1", "scheduler=cosine",
                 "optimizer=sgd", "optimizer.momentum=0.9", "optimizer.nesterov=true")
    assert result.returncode == 0, result.output[-3000:]
    run = result.run_dirs()[-1]  # the second of the two runs
    assert (run / "csv" / "metrics.csv").read_text().count("val/acc") >= 1
    rows = (run / "test_predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 360 and rows[0].startswith("sample,true,predicted,loss,p_0,")


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["model=resnet_tiny_typo"], ["model=resnet_tiny_typo names no config in conf/model/", "softmax_regression"]),
        (["augment=[flip_crop,erasin]"], ["augment=erasin names no config in conf/augment/; did you mean erasing?"]),
        (["optimizer.lr=-1"], ["optimizer.lr must be a positive number, got -1"]),
        (["data.batch_size=0"], ["data.batch_size must be a positive integer"]),
        (["data.val_fraction=1.5"], ["data.val_fraction must be between 0 and 1"]),
        (["model=perceptron"], ["one output unit for a two-class problem, but the data set has 10 classes"]),
        (["data.input_shape=[1,9,9]"], ["data.input_shape is [1, 9, 9] but the digits train split has inputs of "
                                        "shape [1, 8, 8]"]),
    ],
)
def test_bad_input_stops_with_one_sentence(cli_in_process, args, fragments):
    assert_one_sentence(cli_in_process("src.train", *args, "trainer.max_epochs=1"), *fragments)


@pytest.mark.parametrize("module,args,fragment", [
    ("src.eval", ["ckpt_path=x.ckpt", "data=digts"], "data=digts names no config in conf/data/; did you mean digits?"),
    ("src.predict", ["ckpt_path=x.ckpt", "inputs=[a.png"], "cannot read the override inputs=[a.png: "),
    ("src.visualize", ["cam", "ckpt_path=x.ckpt", "data=fashion_mnst"],
     "did you mean fashion_mnist or fashion_mnist_multilabel?"),
    ("src.audit", ["duplicates", "data=cifar1O"], "data=cifar1O names no config in conf/data/; did you mean cifar10"),
])
def test_every_entry_point_checks_its_command_line_before_composing(cli_in_process, module, args, fragment):
    line = assert_one_sentence(cli_in_process(module, *args), fragment)
    assert "base/" not in line  # the shared base configs are not choices


def test_eval_bad_checkpoints(cli_in_process, tmp_path):
    assert_one_sentence(cli_in_process("src.eval"), "ckpt_path is required")
    assert_one_sentence(cli_in_process("src.eval", "ckpt_path=missing.ckpt"), "no checkpoint at missing.ckpt")
    (tmp_path / "corrupt.ckpt").write_bytes(b"not a checkpoint")
    assert_one_sentence(cli_in_process("src.eval", f"ckpt_path={tmp_path / 'corrupt.ckpt'}"),
                         "not a readable PyTorch checkpoint")

"""Results a reviewer trusts, end to end on real digits: temperature scaling (`src.calibrate`) of a deliberately
over-confident net, then `src.eval` and `src.export` applying it. One over-confident run is shared by the module."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from tests.conftest import ROOT, CliResult, assert_one_sentence, run_module

# Many optimizer steps, no regularisation, a big learning rate and few training images (val 70 % of the
# non-test half): the net ends sure of itself on test images it gets wrong.
OVERCONFIDENT = ["trainer.max_epochs=1", "data.steps_per_epoch=1500", "optimizer.lr=0.03",
                 "model.net.hidden_sizes=[256]", "data.test_fraction=0.5", "data.val_fraction=0.7",
                 "callbacks.early_stopping=null", "callbacks.progress_bar=null", "logger=none"]


def run_cli(cwd: Path, module: str, *args: str) -> CliResult:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="120")
    return CliResult(run_module(module, args, cwd, env), cwd)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def overconfident(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("overconfident")
    result = run_cli(cwd, "src.train", *OVERCONFIDENT, "hydra.run.dir=study/mlp")
    assert result.returncode == 0, result.output[-3000:]
    run = cwd / "study" / "mlp"
    return {"cwd": cwd, "run": run, "last": run / "checkpoints" / "last.ckpt"}


@pytest.fixture(scope="module")
def calibrated(overconfident):
    result = run_cli(overconfident["cwd"], "src.calibrate", f"ckpt_path={overconfident['last']}")
    assert result.returncode == 0, result.output[-3000:]
    return {"result": result, "ckpt": overconfident["last"].with_name("last.calibrated.ckpt")}


def test_calibrate_lowers_test_ece_by_a_third_and_keeps_every_prediction(overconfident, calibrated):
    out = calibrated["result"].stdout
    temperature = float(re.search(r"temperature T = ([\d.]+)", out).group(1))
    before, after = map(float, re.search(r"test +ece: ([\d.]+) -> ([\d.]+)", out).groups())
    assert temperature > 1  # over-confident: the logits are softened
    assert after <= 0.7 * before, out
    assert "test accuracy unchanged: True" in out

    stored = torch.load(calibrated["ckpt"], map_location="cpu", weights_only=True)
    original = torch.load(overconfident["last"], map_location="cpu", weights_only=True)
    assert stored["temperature"] == pytest.approx(temperature, abs=1e-4)
    assert stored["run_config"] == original["run_config"]
    assert stored["DigitsDataModule"]["class_names"] == original["DigitsDataModule"]["class_names"]

    # src.eval applies the temperature: same predicted classes as the run's own test predictions, lower ECE
    result = run_cli(overconfident["cwd"], "src.eval", f"ckpt_path={calibrated['ckpt']}")
    assert result.returncode == 0, result.output[-3000:]
    (report,) = (overconfident["run"] / "eval").iterdir()
    metrics = json.loads((report / "metrics.json").read_text())["metrics"]
    assert metrics["test/ece"] == pytest.approx(after, abs=1e-4)
    assert {"test/nll", "test/brier"} <= set(metrics) and (report / "reliability_diagram.png").stat().st_size > 10_000
    evaluated, trained = read_csv(report / "predictions.csv"), read_csv(overconfident["run"] / "test_predictions.csv")
    assert [r["predicted"] for r in evaluated] == [r["predicted"] for r in trained]
    assert [r["sample"] for r in evaluated] == [r["sample"] for r in trained]

    # the report's probabilities are the calibrated model's, sample by sample (predicted here in a plain loop)
    from src.builders import build_datamodule
    from src.inference.model import rebuild_module
    from src.runs.checkpoint import load_checkpoint, training_paths

    path, ckpt = load_checkpoint(str(calibrated["ckpt"]))
    module = rebuild_module(path, ckpt)
    datamodule = build_datamodule(training_paths(ckpt["run_config"]))
    datamodule.prepare_data()
    datamodule.setup("test")
    with torch.no_grad():
        expected = torch.cat([module.predict_proba(x) for x, _ in datamodule.test_dataloader()])
    reported = torch.tensor([[float(r[f"p_{c}"]) for c in range(10)] for r in evaluated])
    assert torch.allclose(reported, expected, atol=1e-5)


def test_exported_onnx_gives_the_temperature_scaled_probabilities(overconfident, calibrated, tmp_path):
    from src.inference.model import rebuild_module
    from src.runs.checkpoint import load_checkpoint

    out = tmp_path / "calibrated.onnx"
    result = run_cli(tmp_path, "src.export", f"ckpt_path={calibrated['ckpt']}", "format=onnx", f"output={out}")
    assert result.returncode == 0, result.output[-3000:]
    path, ckpt = load_checkpoint(str(calibrated["ckpt"]))
    net = rebuild_module(path, ckpt, calibrated=False).net  # the net as trained, without the temperature
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = torch.softmax(net(x) / ckpt["temperature"], 1)
    assert torch.allclose(torch.softmax(torch.from_numpy(logits), 1), expected, atol=1e-5)
    assert not torch.allclose(expected, torch.softmax(net(x), 1).detach(), atol=1e-3)  # T really changes them


def test_predict_gives_softer_probabilities_and_the_same_classes_with_the_temperature(overconfident, calibrated,
                                                                                     tmp_path):
    from sklearn.datasets import load_digits

    images = tmp_path / "digits"
    images.mkdir()
    for i, pixels in enumerate(load_digits().images[:40]):  # 0..16 grey levels, as the digits set draws them
        Image.fromarray((pixels * 255 / 16).astype(np.uint8)).save(images / f"{i:02d}.png")
    rows = {}
    for name in ("last", "calibrated"):
        ckpt = overconfident["last"] if name == "last" else calibrated["ckpt"]
        result = run_cli(tmp_path, "src.predict", f"ckpt_path={ckpt}", f"inputs={images}", f"output={name}.csv")
        assert result.returncode == 0, result.output[-3000:]
        rows[name] = read_csv(tmp_path / f"{name}.csv")
    assert [r["class"] for r in rows["calibrated"]] == [r["class"] for r in rows["last"]]
    softer = [float(c["probability"]) - float(r["probability"]) for c, r in zip(rows["calibrated"], rows["last"])]
    assert max(softer) <= 1e-6 and min(softer) < -1e-3  # T > 1 lowers every top probability, some visibly


def test_calibrate_refuses_a_run_that_validates_on_its_test_split(tmp_path):
    result = run_cli(tmp_path, "src.train", "data=iris", "data.validate_on_test=true", "trainer.max_epochs=1",
                     "callbacks.progress_bar=null", "logger=none", "hydra.run.dir=iris_run")
    assert result.returncode == 0, result.output[-3000:]
    assert_one_sentence(run_cli(tmp_path, "src.calibrate", f"ckpt_path={tmp_path / 'iris_run/checkpoints/last.ckpt'}"),
                 "validates on its test split")


# --- baselines and comparisons beside the net --------------------------------------------------------------
DIGITS_SPLIT = ["data.test_fraction=0.5", "data.val_fraction=0.7"]  # the over-confident run's split


@pytest.fixture(scope="module")
def baselines(overconfident):
    result = run_cli(overconfident["cwd"], "src.baseline", *DIGITS_SPLIT, "hydra.run.dir=study/baselines")
    assert result.returncode == 0, result.output[-3000:]
    return overconfident["cwd"] / "study" / "baselines"


def test_baselines_on_digits_are_listed_by_report_beside_the_net_on_the_same_test_samples(overconfident, baselines):
    net = read_csv(overconfident["run"] / "test_predictions.csv")
    for name in ("hist_gradient_boosting", "logistic_regression"):
        run = baselines / name
        record = json.loads((run / "metrics.json").read_text())
        assert record["metrics"]["test/acc"] > 0.85 and {"val/acc", "test/f1", "test/ece"} <= set(record["metrics"])
        assert record["config"]["data"]["split_seed"] == 42 and "model=" + name in record["overrides"]
        rows = read_csv(run / "test_predictions.csv")
        assert [(r["sample"], r["true"]) for r in rows] == [(r["sample"], r["true"]) for r in net]
    result = run_cli(overconfident["cwd"], "src.report", "study")
    assert result.returncode == 0, result.output[-3000:]
    table = (overconfident["cwd"] / "study" / "report.csv").read_text()
    for job in ("mlp", "baselines/hist_gradient_boosting", "baselines/logistic_regression"):
        assert job in table, table


def test_compare_of_the_net_and_a_baseline_writes_the_report(overconfident, baselines):
    result = run_cli(overconfident["cwd"], "src.compare", str(overconfident["run"]),
                     str(baselines / "logistic_regression"), "--out", "cmp")
    assert result.returncode == 0, result.output[-3000:]
    out = overconfident["cwd"] / "cmp"
    report = json.loads((out / "compare.json").read_text())
    assert report["samples"] == 899 and report["ci_low"] <= report["difference"] <= report["ci_high"]
    assert 0 <= report["mcnemar_p"] <= 1 and len(report["per_class"]) == 10
    assert "McNemar's exact test p =" in result.stdout and "bootstrap 95 % interval" in result.stdout
    disagreements = read_csv(out / "disagreements.csv")
    assert len(disagreements) == report["a_right_b_wrong"] + report["b_right_a_wrong"] > 0
    assert (out / "disagreements.png").stat().st_size > 10_000  # digits are images: the grid is drawn


def test_a_baseline_sweep_over_seeds_is_compared_by_model_and_says_the_seeds_are_too_few(tmp_path):
    result = run_cli(tmp_path, "src.baseline", "-m", "data=iris", "seed=1,2,3", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.output[-3000:]
    result = run_cli(tmp_path, "src.compare", "sweep", "--by", "model", "--out", "cmp")
    assert result.returncode == 0, result.output[-3000:]
    report = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert report["pairs"] == 3 and [row["seed"] for row in report["rows"]] == [1, 2, 3]
    assert (report["a"], report["b"]) == ("hist_gradient_boosting", "logistic_regression")
    assert "Too few seeds" in result.stdout and "cannot reach p < 0.05" in result.stdout


def test_baselines_on_penguins_are_listed_beside_an_mlp_on_the_same_test_rows(tmp_path):
    from tests.own_data import penguins_csv

    (tmp_path / "penguins.csv").write_bytes(penguins_csv().read_bytes())
    table = ["data=csv", "data.path=penguins.csv", "data.target=species", "data.missing=mean"]
    net = run_cli(tmp_path, "src.train", *table, "trainer.max_epochs=3", "logger=none", "callbacks.progress_bar=null",
                  "hydra.run.dir=study/mlp")
    assert net.returncode == 0, net.output[-3000:]
    base = run_cli(tmp_path, "src.baseline", *table, "hydra.run.dir=study/baselines")
    assert base.returncode == 0, base.output[-3000:]
    expected = [(r["sample"], r["true"]) for r in read_csv(tmp_path / "study/mlp/test_predictions.csv")]
    for name in ("hist_gradient_boosting", "logistic_regression"):
        rows = read_csv(tmp_path / "study/baselines" / name / "test_predictions.csv")
        assert [(r["sample"], r["true"]) for r in rows] == expected
        record = json.loads((tmp_path / "study/baselines" / name / "metrics.json").read_text())
        assert record["metrics"]["test/acc"] > 0.9
    report = run_cli(tmp_path, "src.report", "study")
    assert report.returncode == 0 and "baselines/logistic_regression" in report.stdout, report.output[-3000:]


def test_a_baseline_on_an_image_folder_too_large_for_memory_is_assert_one_sentence(tmp_path, cli_in_process):
    from tests.own_data import write_photo_folder

    write_photo_folder(tmp_path / "photos")
    result = cli_in_process("src.baseline", "data=image_folder", f"data.root={tmp_path / 'photos'}",
                            "data.max_memory_fraction=1e-9")
    assert_one_sentence(result, "read sample by sample", "need every input in memory")

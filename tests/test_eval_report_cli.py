"""Seeing what a model does, end to end on real digits: the TensorBoard views written during training,
`src.eval`'s report folder, `src.predict` on image files, `src.export` to ONNX / TorchScript, and the
one-sentence failures of each. One short training run is shared by the whole module."""

from __future__ import annotations

import csv
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, CliResult, assert_one_sentence, run_module

EPOCHS = 2


def run_cli(cwd: Path, module: str, *args: str) -> CliResult:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="120")
    return CliResult(run_module(module, args, cwd, env), cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One digits run (MLP, 2 epochs, TensorBoard and its report views), as
    `python -m src.train trainer.max_epochs=2 callbacks=reports`."""
    cwd = tmp_path_factory.mktemp("trained")
    result = run_cli(cwd, "src.train", f"trainer.max_epochs={EPOCHS}", "callbacks=reports",
                     "callbacks.progress_bar=null")
    assert result.returncode == 0, result.output[-3000:]
    (run,) = result.run_dirs()
    (best,) = (run / "checkpoints").glob("epoch_*.ckpt")
    return {"cwd": cwd, "run": run, "best": best, "metrics": result.metrics()}


def digits_test_split():
    from src.data.digits import DigitsDataModule

    datamodule = DigitsDataModule(name="digits", num_classes=10, input_shape=[1, 8, 8], device="cpu")
    datamodule.setup("test")
    return datamodule


def png_is_a_picture(path: Path, min_size=(500, 250)) -> None:
    from PIL import Image

    with Image.open(path) as image:
        assert image.width >= min_size[0] and image.height >= min_size[1], (path, image.size)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 20, f"{path} looks blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, f"{path} has almost no colours"


# --- TensorBoard, during training -----------------------------------------------------------------
def test_tensorboard_shows_confusion_images_per_class_scores_prediction_grid_and_curve_layout(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    events = EventAccumulator(str(trained["run"] / "tensorboard"),
                              size_guidance={"images": 0, "tensors": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"confusion_matrix/val", "confusion_matrix/test", "predictions/test"} <= set(tags["images"])
    assert len(events.Images("confusion_matrix/val")) == EPOCHS  # every epoch of a short run
    grid = events.Images("predictions/test")[0]
    assert grid.width > 1000 and grid.height > 600
    scalars = set(tags["scalars"])
    for split in ("val", "test"):
        assert {f"{split}/{score}/{digit}" for score in ("precision", "recall", "f1") for digit in range(10)} <= scalars
    assert {"val/precision", "test/f1"} <= scalars  # the macro averages stay
    layout = layout_pb2.Layout.FromString(events.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {chart.title: list(chart.multiline.tag) for cat in layout.category for chart in cat.chart}
    assert charts == {"loss": ["^train/loss$", "^val/loss$"], "accuracy": ["^train/acc$", "^val/acc$"]}
    assert tags["graph"]  # GRAPHS tab: the model traced on example_input_array
    # per-class recall of the test split agrees with the run's macro recall
    recalls = [events.Scalars(f"test/recall/{d}")[-1].value for d in range(10)]
    assert np.mean(recalls) == pytest.approx(trained["metrics"]["test/recall"], abs=1e-5)


# --- src.eval -------------------------------------------------------------------------------------
def test_eval_writes_the_report_folder_next_to_the_run(trained):
    result = run_cli(trained["cwd"], "src.eval", f"ckpt_path={trained['best']}")
    assert result.returncode == 0, result.output[-3000:]
    (report,) = (trained["run"] / "eval").iterdir()
    names = {p.name for p in report.iterdir()}
    assert {"metrics.json", "confusion_matrix.png", "confusion_matrix.csv", "per_class.csv", "predictions.png",
            "learning_curves.png"} <= names
    assert ".hydra" not in names
    metrics = json.loads((report / "metrics.json").read_text())["metrics"]
    assert metrics["test/acc"] == pytest.approx(trained["metrics"]["test/acc"])

    rows = list(csv.reader(open(report / "confusion_matrix.csv")))
    assert rows[0] == [""] + [f"pred_{d}" for d in range(10)]
    assert [r[0] for r in rows[1:]] == [f"true_{d}" for d in range(10)]
    counts = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    assert np.trace(counts) / counts.sum() == pytest.approx(metrics["test/acc"], abs=1e-6)

    per_class = list(csv.DictReader(open(report / "per_class.csv")))
    assert [r["class"] for r in per_class] == [str(d) for d in range(10)]
    assert [int(r["support"]) for r in per_class] == counts.sum(axis=1).tolist()
    assert np.mean([float(r["f1"]) for r in per_class]) == pytest.approx(metrics["test/f1"], abs=1e-5)

    for name in ("confusion_matrix.png", "predictions.png", "learning_curves.png"):
        png_is_a_picture(report / name)
    assert f"report: {report}" in result.stdout


def test_eval_without_training_logs_skips_learning_curves(trained, tmp_path, compose, capsys):
    import src.eval

    moved = tmp_path / "elsewhere" / "checkpoints" / "model.ckpt"
    moved.parent.mkdir(parents=True)
    shutil.copy(trained["best"], moved)
    cfg = compose([f"ckpt_path={moved}", "trainer=cpu"], config_name="eval")
    src.eval.evaluate(cfg)
    assert "learning_curves.png skipped: no TensorBoard event files or CSV logs" in capsys.readouterr().out
    written = {p.name for p in (tmp_path / "run").iterdir()}
    assert "learning_curves.png" not in written and "confusion_matrix.png" in written


def test_eval_refuses_weights_that_do_not_fit_and_data_that_does_not_fit(trained, tmp_path, compose):
    import src.eval
    from src.errors import UserError

    ckpt = torch.load(trained["best"], map_location="cpu", weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.ndim == 2)
    ckpt["state_dict"][name] = torch.zeros(3, 3)
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(UserError, match=r"the weights in .*bad.ckpt do not fit the MLP rebuilt from its stored"):
        src.eval.evaluate(compose([f"ckpt_path={bad}", "trainer=cpu"], config_name="eval"))
    with pytest.raises(UserError, match=r"takes inputs of shape \[1, 8, 8\] in 10 classes, but the data \(digits\) "
                                        r"gives \[1, 8, 8\] in 5 classes"):
        src.eval.evaluate(compose([f"ckpt_path={trained['best']}", "trainer=cpu", "+data.num_classes=5"],
                                  config_name="eval"))


# --- src.predict ----------------------------------------------------------------------------------
def test_predict_on_png_files_matches_the_model_on_the_data_set_tensors(trained, tmp_path):
    from PIL import Image

    from src.callbacks.tensorboard_reports import predict_classes
    from src.inference.model import rebuild_module
    from src.runs.checkpoint import load_checkpoint

    datamodule = digits_test_split()
    raw, n = datamodule.test_split.inputs, 16
    folder = tmp_path / "pngs"
    folder.mkdir()
    grey = np.round(raw[:, 0].numpy().astype(np.float64) * 255 / 16).astype(np.uint8)  # 0..16 -> 0..255
    for i in range(n):  # grey PNGs: half at 8x8, half upscaled to 32x32
        image = Image.fromarray(grey[i], "L")
        (image if i % 2 else image.resize((32, 32), Image.Resampling.NEAREST)).save(folder / f"digit_{i:02d}.png")
    Image.fromarray(grey[3], "L").convert("RGB").save(folder / "rgb_03.png")  # RGB file, grey model: converted
    (folder / "notes.txt").write_text("not an image: ignored in a folder")

    path, ckpt = load_checkpoint(str(trained["best"]))
    expected = predict_classes(rebuild_module(path, ckpt), raw[:n], datamodule.transform).tolist()

    result = run_cli(tmp_path, "src.predict", f"ckpt_path={trained['best']}", f"inputs={folder}")
    assert result.returncode == 0, result.output[-3000:]
    (out,) = (tmp_path / "logs" / "predict" / "runs").glob("*/predictions.csv")
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == n + 1 and set(rows[0]) == {"file", "class", "probability"}
    got = {Path(r["file"]).name: r for r in rows}
    assert [int(got[f"digit_{i:02d}.png"]["class"]) for i in range(n)] == expected
    assert got["rgb_03.png"]["class"] == str(expected[3])
    assert all(0.1 <= float(r["probability"]) <= 1.0 for r in rows)
    assert "digit_00.png" in result.stdout and "17 image(s) classified" in result.stdout


def test_predict_preprocessing_comes_from_the_checkpoint(trained):
    from src.inference.preprocessing import preprocessing_of
    from src.runs.checkpoint import load_checkpoint

    path, ckpt = load_checkpoint(str(trained["best"]))
    prep = preprocessing_of(ckpt, path)
    train_transform = digits_test_split().transform  # normalisation fitted on the training split
    assert prep.input_shape == (1, 8, 8) and prep.class_names == [str(d) for d in range(10)]
    assert prep.max_value == 16.0
    assert prep.transform["mean"] == pytest.approx(train_transform.mean.flatten().tolist())
    assert prep.transform["std"] == pytest.approx(train_transform.std.flatten().tolist())


def test_predict_bad_inputs_are_one_sentence(trained, tmp_path, compose, cli_in_process):
    from PIL import Image

    from src.errors import UserError
    from src.predict import predict

    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_sentence(cli_in_process("src.predict", f"ckpt_path={trained['best']}", f"inputs={empty}"),
                         f"the folder {empty} holds no images")

    def run(inputs, ckpt=trained["best"]):
        predict(compose([f"ckpt_path={ckpt}", f"inputs={inputs}"], config_name="predict"))

    with pytest.raises(UserError, match="no file matches"):
        run(f"{tmp_path}/nothing_*.png")
    with pytest.raises(UserError, match="there is no image or folder at"):
        run(f"{tmp_path}/missing.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    with pytest.raises(UserError, match=r"broken.png is not a readable image"):
        run(broken)
    Image.new("L", (8, 8)).save(tmp_path / "fine.png")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        run(tmp_path / "fine.png", ckpt=corrupt)


def test_predict_refuses_a_model_of_non_image_data(tmp_path, compose):
    """An iris model (4 features) cannot classify image files; eval on it skips the image grid."""
    from src.errors import UserError
    from src.predict import predict
    from src.train import train

    train(compose(["data=iris", "model=softmax_regression", "trainer.max_epochs=1", "logger=none",
                   "callbacks.progress_bar=null", "callbacks.model_summary=null", "trainer=cpu"]))
    (ckpt,) = (tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    with pytest.raises(UserError, match=r"predict takes images, but the model in .* was trained on iris, whose "
                                        r"inputs have shape \[4\]"):
        predict(compose([f"ckpt_path={ckpt}", f"inputs={tmp_path / 'x.png'}"], config_name="predict"))


# --- src.export -----------------------------------------------------------------------------------
def test_export_onnx_matches_pytorch(trained, tmp_path):
    out = tmp_path / "model.onnx"
    result = run_cli(tmp_path, "src.export", f"ckpt_path={trained['best']}", "format=onnx", f"output={out}")
    assert result.returncode == 0, result.output[-3000:]
    assert "max abs diff vs PyTorch" in result.stdout and f"exported onnx: {out}" in result.stdout
    assert out.stat().st_size > 10_000
    meta = json.loads((tmp_path / "model.onnx.json").read_text())
    assert meta["class_names"] == [str(d) for d in range(10)] and meta["preprocessing"]["max_value"] == 16.0
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(9, 1, 8, 8)
    assert session.run(None, {"input": x.numpy()})[0].shape == (9, 10)  # any batch size


def test_export_torchscript_next_to_the_checkpoint(trained, compose, capsys):
    from src.export import export

    path = export(compose([f"ckpt_path={trained['best']}", "format=torchscript"], config_name="export"))
    assert path == trained["best"].with_suffix(".torchscript.pt") and path.is_file()
    assert "max abs diff vs PyTorch: 0" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in recent PyTorch
        loaded = torch.jit.load(str(path))
    assert loaded(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_export_bad_input_is_one_sentence(tmp_path, cli_in_process):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    assert_one_sentence(cli_in_process("src.export", f"ckpt_path={corrupt}"), "not a readable PyTorch checkpoint")


def test_export_to_an_unwritable_path_blames_the_path(trained, tmp_path, compose):
    from src.errors import UserError
    from src.export import export

    for output, message in (("/proc/no_such_dir/model.onnx", r"cannot write output=/proc/no_such_dir/model\.onnx \("),
                            (str(tmp_path), "is a folder; give a file path")):
        with pytest.raises(UserError, match=message):
            export(compose([f"ckpt_path={trained['best']}", "format=onnx", f"output={output}"], config_name="export"))

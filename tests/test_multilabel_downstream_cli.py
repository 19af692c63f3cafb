"""A model with several labels per sample through the commands built beside it: one short run on an image folder
with a labels file (coloured squares), then src.serve of its checkpoint and of its ONNX file against src.predict,
src.eval of the float and int8 ONNX files, src.export format=hub (thresholds, per-label temperatures, the card's
multi-label metrics) read back by src.eval and src.predict, and distillation refused in one sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import CliResult, assert_one_sentence, run_module
from tests.test_multilabel_cli import FAST, env, read_rows, write_labels, write_shapes
from tests.test_serve_cli import Server, multipart, request

NAMES = ["blue", "green", "red"]


def run_ok(cwd, module: str, *args: str) -> CliResult:
    result = CliResult(run_module(module, args, cwd, env()), cwd)
    assert result.returncode == 0, result.output[-3000:]
    return result


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """LeNet trained 4 epochs on 120 labelled square images; its ONNX file (and int8 copy); src.predict's answers
    on 8 new images; src.serve of the checkpoint and of the ONNX file."""
    tmp = tmp_path_factory.mktemp("multilabel_downstream")
    write_labels(tmp / "shapes" / "labels.csv", write_shapes(tmp / "shapes", 120, seed=0))
    run_ok(tmp, "src.train", "data=image_folder", "data.root=shapes", "data.labels_file=labels.csv", "model=lenet",
           *FAST, "trainer.max_epochs=4", f"hydra.run.dir={tmp / 'run'}")
    (best,) = (tmp / "run" / "checkpoints").glob("epoch_*.ckpt")
    servers = {"checkpoint": Server(tmp, "checkpoint", f"ckpt_path={best}")}  # starts while the rest runs
    exported = run_ok(tmp, "src.export", f"ckpt_path={best}", f"output={tmp / 'm.onnx'}", "quantize=int8",
                      "calibration_samples=64")
    servers["onnx"] = Server(tmp, "onnx", f"ckpt_path={tmp / 'm.onnx'}")
    write_shapes(tmp / "new", 8, seed=5)
    run_ok(tmp, "src.predict", f"ckpt_path={best}", "inputs=new", f"output={tmp / 'new.csv'}")
    try:
        yield {"tmp": tmp, "best": best, "exported": exported,
               "servers": {k: s.wait_ready() for k, s in servers.items()},
               "thresholds": torch.load(best, weights_only=True)["state_dict"]["thresholds"].tolist()}
    finally:
        for server in servers.values():
            server.stop(wait=False)
        for server in servers.values():
            server.stop()


def test_src_serve_answers_every_label_with_its_probability_and_threshold_as_src_predict(labelled):
    tmp, thresholds = labelled["tmp"], labelled["thresholds"]
    predicted = read_rows(tmp / "new.csv")
    images = [(tmp / "new" / f"{i:03d}.png").read_bytes() for i in range(8)]
    body, content_type = multipart(images)
    for which, server in labelled["servers"].items():
        status, answer = request(server.port, "/predict", body, content_type)
        assert status == 200, answer
        assert len(answer["predictions"]) == 8
        for row, served in zip(predicted, answer["predictions"]):
            scores = served["scores"]
            assert [s["label"] for s in scores] == sorted(NAMES, key=lambda n: -float(row[f"p_{n}"])), which
            for score in scores:
                assert score["probability"] == pytest.approx(float(row[f"p_{score['label']}"]), abs=1e-5), which
                assert score["threshold"] == pytest.approx(thresholds[NAMES.index(score["label"])], abs=1e-7)
                assert score["above"] == (score["probability"] > score["threshold"])
            assert sorted(served["labels"]) == sorted(n for n in row["labels"].split("|") if n), (which, row)
        info = request(server.port, "/info")[1]
        assert info["task"] == "multilabel" and info["classes"] == NAMES, info
        assert list(info["thresholds"]) == NAMES
        assert list(info["thresholds"].values()) == pytest.approx(thresholds, abs=1e-7)
    status, answer = request(labelled["servers"]["onnx"].port, "/predict", images[0], "image/png")  # one raw image
    assert status == 200 and answer["predictions"][0]["labels"] == \
        [s["label"] for s in answer["predictions"][0]["scores"] if s["above"]]


def test_a_grey_image_sent_to_the_rgb_model_is_converted_as_src_predict_converts_it(labelled):
    from PIL import Image

    tmp = labelled["tmp"]
    (tmp / "grey").mkdir(exist_ok=True)
    Image.open(tmp / "new" / "000.png").convert("L").save(tmp / "grey" / "grey.png")
    run_ok(tmp, "src.predict", f"ckpt_path={labelled['best']}", "inputs=grey", f"output={tmp / 'grey.csv'}")
    (row,) = read_rows(tmp / "grey.csv")
    status, answer = request(labelled["servers"]["checkpoint"].port, "/predict",
                             (tmp / "grey" / "grey.png").read_bytes(), "image/png")
    assert status == 200, answer
    for score in answer["predictions"][0]["scores"]:
        assert score["probability"] == pytest.approx(float(row[f"p_{score['label']}"]), abs=1e-5)


def test_a_label_the_model_never_learned_stops_src_eval_and_src_calibrate_in_one_sentence(labelled):
    tmp = labelled["tmp"]
    text = (tmp / "shapes" / "labels.csv").read_text()
    (tmp / "shapes" / "renamed.csv").write_text(text.replace("red", "orange"))  # as many labels, one renamed
    for module in ("src.eval", "src.calibrate"):
        result = CliResult(run_module(module, [f"ckpt_path={labelled['best']}", "+data.labels_file=renamed.csv",
                                               f"output={tmp / 'unused.ckpt'}"] if module == "src.calibrate" else
                                      [f"ckpt_path={labelled['best']}", "+data.labels_file=renamed.csv"], tmp, env()),
                           tmp)
        assert_one_sentence(result, "unknown label 'orange'", "blue, green, red")


def test_src_eval_of_the_multi_label_onnx_file_reports_the_checkpoints_metrics_and_int8_runs(labelled):
    tmp = labelled["tmp"]
    trained = json.loads((tmp / "run" / "metrics.json").read_text())["metrics"]
    run_ok(tmp, "src.eval", f"ckpt_path={tmp / 'm.onnx'}", "logger=none", f"hydra.run.dir={tmp / 'eval_onnx'}")
    evaluated = json.loads((tmp / "eval_onnx" / "metrics.json").read_text())["metrics"]
    for key in ("test/map", "test/f1_micro", "test/f1_macro", "test/exact_match", "test/hamming", "test/loss"):
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-4), key
    expected = read_rows(tmp / "run" / "test_predictions.csv")
    got = read_rows(tmp / "eval_onnx" / "predictions.csv")
    assert [r["predicted"] for r in got] == [r["predicted"] for r in expected]
    assert np.allclose([[float(r[f"p_{n}"]) for n in NAMES] for r in got],
                       [[float(r[f"p_{n}"]) for n in NAMES] for r in expected], atol=1e-5)

    assert "predicted label set as the float file's for" in labelled["exported"].stdout
    int8 = run_ok(tmp, "src.eval", f"ckpt_path={tmp / 'm.int8.onnx'}", "logger=none",
                  f"hydra.run.dir={tmp / 'eval_int8'}")
    quantized = json.loads((tmp / "eval_int8" / "metrics.json").read_text())["metrics"]
    assert 0 <= quantized["test/map"] <= 1 and "map=" in int8.stdout


def test_a_multi_label_model_folder_keeps_thresholds_and_temperatures_and_its_card_shows_map(labelled):
    from src.inference.images import load_image
    from src.inference.model import rebuild_module
    from src.inference.preprocessing import preprocessing_of
    from src.runs.checkpoint import load_checkpoint

    tmp, best = labelled["tmp"], labelled["best"]
    calibrated = tmp / "run" / "checkpoints" / "calibrated.ckpt"  # in the run: the card finds its records
    run_ok(tmp, "src.calibrate", f"ckpt_path={best}", f"output={calibrated}")
    run_ok(tmp, "src.export", f"ckpt_path={calibrated}", "format=hub", f"output={tmp / 'folder'}")
    path, stored = load_checkpoint(str(calibrated))
    config = json.loads((tmp / "folder" / "config.json").read_text())
    assert config["task"] == "multilabel" and list(config["thresholds"]) == NAMES
    assert list(config["thresholds"].values()) == pytest.approx(stored["state_dict"]["thresholds"].tolist(), abs=1e-7)
    assert config["temperature"] == pytest.approx(stored["temperature"], abs=1e-7) and len(config["temperature"]) == 3

    run_ok(tmp, "src.predict", f"ckpt_path={tmp / 'folder'}", "inputs=new", f"output={tmp / 'from_folder.csv'}")
    rows, model, prep = read_rows(tmp / "from_folder.csv"), rebuild_module(path, stored), preprocessing_of(stored, path)
    raw = torch.stack([load_image(tmp / row["file"], prep.input_shape, prep.max_value, False) for row in rows])
    with torch.no_grad():
        expected = model.predict_proba(prep.normalize(raw)).numpy()  # the calibrated checkpoint's
    assert np.allclose([[float(r[f"p_{n}"]) for n in NAMES] for r in rows], expected, atol=1e-6, rtol=0)
    assert not np.allclose(expected, [[float(r[f"p_{n}"]) for n in NAMES] for r in read_rows(tmp / "new.csv")],
                           atol=1e-3)  # the temperatures apply
    above = expected > stored["state_dict"]["thresholds"].numpy()
    assert [r["labels"] for r in rows] == ["|".join(n for n, a in zip(NAMES, row) if a) for row in above]

    run_ok(tmp, "src.eval", f"ckpt_path={tmp / 'folder'}", "logger=none", f"hydra.run.dir={tmp / 'eval_folder'}")
    trained = json.loads((tmp / "run" / "metrics.json").read_text())["metrics"]
    evaluated = json.loads((tmp / "eval_folder" / "metrics.json").read_text())["metrics"]
    for key in ("test/map", "test/f1_micro", "test/exact_match"):  # a temperature per label and thresholds moved
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-6), key  # with it keep every ranking and label
    assert [r["predicted"] for r in read_rows(tmp / "eval_folder" / "predictions.csv")] == \
        [r["predicted"] for r in read_rows(tmp / "run" / "test_predictions.csv")]

    card = (tmp / "folder" / "README.md").read_text()
    assert f"| test/map | {trained['test/map']:.4f} |" in card and "- multi-label-classification" in card
    assert "test/acc" not in card and "accuracy" not in card and "confusion" not in card
    assert "## Per-label metrics (test)" in card
    for name, threshold in zip(NAMES, config["thresholds"].values()):
        assert f"| {name} | {threshold:.4f} |" in card


def test_distillation_with_several_labels_per_sample_is_refused_in_one_sentence(labelled, cli_in_process):
    tmp, best = labelled["tmp"], labelled["best"]
    student = cli_in_process("src.train", "data=image_folder", f"data.root={tmp / 'shapes'}",
                             "data.labels_file=labels.csv", "model=lenet", *FAST, f"distill.teacher={best}")
    assert_one_sentence(student, "several labels per sample", "softmax over exclusive classes",
                        "without distill.teacher")
    teacher = cli_in_process("src.train", "logger=none", f"distill.teacher={best}")
    assert_one_sentence(teacher, f"the teacher {best}", "several labels per sample",
                        "a teacher trained with one class per sample")

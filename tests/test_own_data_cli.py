"""Your own data end to end, as a user types it: fine-tuning a timm model from a local weights file on an
image folder of real photos (frozen backbone for one epoch), its eval report (predictions.csv, top
losses), predict on the original 427x640 JPEGs, ONNX export; a CSV table trained and its new rows
predicted; DDP building the image cache once."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from tests.conftest import ROOT, CliResult, run_module
from tests.own_data import penguins_csv, write_photo_folder

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null"]
PHOTO_DATA = ["data=image_folder", "data.image_size=[48,64]"]


def run_cli(cwd: Path, module: str, *args: str) -> CliResult:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="160", HF_HUB_OFFLINE="1")
    return CliResult(run_module(module, args, cwd, env), cwd)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """`python -m src.train` fine-tuning timm's test_resnet, started from a local .safetensors file of its
    1000-class weights, on scikit-learn's two photos (2 classes), backbone frozen in epoch 0."""
    from safetensors.torch import save_file

    cwd = tmp_path_factory.mktemp("finetune")
    originals = write_photo_folder(cwd / "photos")
    torch.manual_seed(0)
    weights = timm.create_model("test_resnet").state_dict()
    save_file(weights, cwd / "test_resnet.safetensors")
    result = run_cli(cwd, "src.train", *PHOTO_DATA, "data.root=photos", "model=timm", "model.net.name=test_resnet",
                     "model.net.weights_file=test_resnet.safetensors", "callbacks=[default,freeze_backbone]",
                     "trainer.max_epochs=2", "callbacks.model_checkpoint.save_top_k=-1", "logger=csv", *QUIET)
    assert result.returncode == 0, result.output[-3000:]
    (run,) = result.run_dirs()
    return {"cwd": cwd, "run": run, "result": result, "weights": weights, "originals": originals}


def test_finetuning_reinitialises_the_head_and_freezes_the_backbone_for_one_epoch(finetuned):
    output, weights = finetuned["result"].output, finetuned["weights"]
    assert "the classifier head (fc) is re-initialised for 2 classes; the weights in test_resnet.safetensors have " \
           "1000" in output
    assert "Backbone frozen (BatchNorm in eval mode) until epoch 1" in output
    assert "Backbone unfrozen at epoch 1" in output
    checkpoints = finetuned["run"] / "checkpoints"
    after = [torch.load(checkpoints / f"epoch_{e:03d}.ckpt", weights_only=True)["state_dict"] for e in (0, 1)]
    backbone = [k for k in weights if not k.startswith("fc.")]
    assert all(torch.equal(after[0][f"net.{k}"], weights[k]) for k in backbone)  # BatchNorm statistics included
    assert not torch.equal(after[0]["net.fc.weight"], after[1]["net.fc.weight"])  # the head trains throughout
    changed = [k for k in backbone if not torch.equal(after[1][f"net.{k}"], weights[k])]
    assert len(changed) > len(backbone) // 2  # epoch 1 trains the backbone


def test_eval_report_lists_every_test_image_and_draws_the_top_losses(finetuned, compose):
    from PIL import Image

    from src.eval import evaluate

    last = finetuned["run"] / "checkpoints" / "last.ckpt"
    evaluate(compose([f"ckpt_path={last}", "trainer=cpu", f"paths.data_dir={finetuned['cwd'] / 'data'}"],
                     config_name="eval"))  # what `python -m src.eval ckpt_path=...` runs
    report = Path(compose(config_name="eval").paths.output_dir)
    rows = list(csv.DictReader(open(report / "predictions.csv")))
    assert [r["sample"] for r in rows] == ["test/china/china_crop.png", "test/china/flower_crop.png",
                                           "test/flower/china_crop.png", "test/flower/flower_crop.png"]
    assert list(rows[0]) == ["sample", "true", "predicted", "loss", "p_china", "p_flower"]
    assert all(abs(float(r["p_china"]) + float(r["p_flower"]) - 1) < 1e-5 for r in rows)
    wrong = sum(r["true"] != r["predicted"] for r in rows)
    assert wrong == 2  # each crop is there under both names: one of the two is always wrong
    metrics = json.loads((report / "metrics.json").read_text())["metrics"]
    assert metrics["test/acc"] == pytest.approx(0.5)
    with Image.open(report / "top_losses.png") as grid:
        assert grid.width >= 200 and np.asarray(grid.convert("L")).std() > 10


def test_predict_resizes_the_original_photos_as_the_data_module_did(finetuned, compose):
    from src.builders import build_datamodule
    from src.inference.model import rebuild_module
    from src.inference.preprocessing import preprocessing_of
    from src.predict import predict
    from src.runs.checkpoint import load_checkpoint

    ckpt_path = finetuned["run"] / "checkpoints" / "last.ckpt"
    new_photos = finetuned["cwd"] / "new_photos"
    new_photos.mkdir(exist_ok=True)
    for original in finetuned["originals"].values():
        (new_photos / original.name).write_bytes(original.read_bytes())
    rows = predict(compose([f"ckpt_path={ckpt_path}", f"inputs={new_photos}"], config_name="predict"))
    assert [Path(r["file"]).name for r in rows] == ["china.jpg", "flower.jpg"]

    path, ckpt = load_checkpoint(str(ckpt_path))
    model, prep = rebuild_module(path, ckpt), preprocessing_of(ckpt, path)
    data_cfg = dict(ckpt["run_config"]["data"], root=str(finetuned["cwd"] / "photos"),
                    cache_dir=str(finetuned["cwd"] / "data" / "image_cache"))
    dm = build_datamodule(data_cfg)
    dm.setup("predict")  # reads the training run's cache
    cached = {n: x for s in (dm.train_split, dm.val_split) for n, x in zip(s.names, s.inputs)}
    for row, name in zip(rows, ("china", "flower")):
        x = cached[f"train/{name}/{name}.jpg"].unsqueeze(0)  # the 427x640 JPEG as the cache holds it: 48x64
        with torch.no_grad():
            p = model.predict_proba(prep.normalize(x))[0]
        assert row["class"] == prep.class_names[int(p.argmax())]
        assert row["probability"] == pytest.approx(float(p.max()), abs=1e-6)


def test_onnx_export_of_the_timm_model_matches_pytorch_in_onnxruntime(finetuned, compose):
    from src.export import export

    out = finetuned["cwd"] / "model.onnx"
    export(compose([f"ckpt_path={finetuned['run'] / 'checkpoints' / 'last.ckpt'}", "format=onnx", f"output={out}"],
                   config_name="export"))  # fails unless onnxruntime's outputs match PyTorch's
    meta = json.loads(out.with_name("model.onnx.json").read_text())
    assert meta["class_names"] == ["china", "flower"] and meta["input"]["shape"] == ["batch", 3, 48, 64]


def test_a_csv_table_trains_and_new_rows_are_predicted_with_the_stored_encoding(tmp_path, compose):
    import pandas as pd

    from src.train import train

    (tmp_path / "penguins.csv").write_bytes(penguins_csv().read_bytes())
    metrics = train(compose(["data=csv", f"data.path={tmp_path / 'penguins.csv'}", "data.target=species",
                             "data.missing=mean", "trainer.max_epochs=20", "trainer=cpu", "logger=none", *QUIET]))
    assert metrics["test/acc"] >= 0.95
    (ckpt,) = (tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt")

    new = pd.read_csv(tmp_path / "penguins.csv").iloc[[0, 3, 200, 300]].copy()  # row 3: missing values
    new.loc[new.index[0], "island"] = "Atlantis"  # a category training never saw
    new.drop(columns=["species"]).to_csv(tmp_path / "new.csv", index=False)
    predicted = run_cli(tmp_path, "src.predict", f"ckpt_path={ckpt}", "inputs=new.csv")
    assert predicted.returncode == 0, predicted.output[-3000:]
    assert "1 value(s) of categories the training split lacks (1 in island) are encoded as all zeros" \
        in predicted.output
    assert "4 row(s) classified" in predicted.stdout
    (out,) = (tmp_path / "logs" / "predict" / "runs").glob("*/predictions.csv")
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["row", "class", "probability", "p_Adelie", "p_Chinstrap", "p_Gentoo"]
    assert [r["class"] for r in rows[1:]] == list(new["species"].iloc[1:])  # Adelie, Gentoo, Chinstrap


def test_ddp_builds_the_image_cache_once(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("left", "right"):
        (tmp_path / "shapes" / label).mkdir(parents=True)
        for i in range(40):
            pixels = (rng.random((28, 28)) * 60).astype(np.uint8)
            pixels[:, :14] += 150 if label == "left" else 0
            pixels[:, 14:] += 150 if label == "right" else 0
            Image.fromarray(pixels, "L").save(tmp_path / "shapes" / label / f"{i}.png")
    result = run_cli(tmp_path, "src.train", "trainer=ddp_sim", "data=image_folder", "data.root=shapes",
                     "data.channels=1", "data.image_size=28", "model=lenet", "train=false", "logger=none", *QUIET)
    assert result.returncode == 0, result.output[-3000:]
    assert result.output.count("Decoding 80 images") == 1  # rank 0 decodes while rank 1 waits, then both read
    assert len(list((tmp_path / "data" / "image_cache").glob("*.npy"))) == 1
    assert result.stdout.count("test: acc=") == 1  # both ranks tested their shares

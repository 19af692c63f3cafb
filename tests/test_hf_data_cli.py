"""`data=hf` end to end on real Hub layouts written with the `datasets` library, offline (HF_HUB_OFFLINE=1):
an `owner/name` Hub id read from the library's own cache, a local Parquet folder (streamed), a saved train-only
DatasetDict; the same Fashion-MNIST images through `data=image_folder`, `data=hf` and `data=hf data.streaming=true`
give the same model; every downstream command runs on such a run; each bad input ends in one sentence."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, CliResult, assert_one_sentence, run_module
from tests.own_data import needs_fashion_mnist

pytest.importorskip("datasets", reason="data=hf needs the datasets library (pip install '.[hf]')")
pytestmark = needs_fashion_mnist

SMALL = ["data.image_size=28", "data.channels=1", "trainer.max_epochs=1", "logger=none", "seed=3",
         "callbacks.progress_bar=null"]


def run_cli(cwd: Path, cache: Path, module: str, *args: str) -> CliResult:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="120", HF_HUB_OFFLINE="1",
               HF_DATASETS_CACHE=str(cache), HF_HOME=str(cache.parent / "hf_home"))
    return CliResult(run_module(module, args, cwd, env), cwd)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    from tests.hf_data import cache_as_hub_id, write_fashion, write_penguins, write_train_only

    root = tmp_path_factory.mktemp("hf")
    folder, hub = write_fashion(root / "fashion", train_per_class=30, test_per_class=10)
    cache = root / "datasets_cache"
    cached = cache_as_hub_id(hub, "someone/fashion_tiny", cache)
    return {"root": root, "folder": folder, "hub": hub, "cache": cache, "cached": cached,
            "penguins": write_penguins(root / "penguins"), "train_only": write_train_only(root / "train_only")}


@pytest.fixture(scope="module")
def runs(sets):
    """The same images trained through an image folder, the Hub id (read from the cache) and the local folder
    streamed."""
    cwd = sets["root"]
    out = {}
    for name, data in (("folder", ["data=image_folder", f"data.root={sets['folder']}"]),
                       ("hub", ["data=hf", "data.path=someone/fashion_tiny"]),
                       ("stream", ["data=hf", f"data.path={sets['hub']}", "data.streaming=true"])):
        result = run_cli(cwd, sets["cache"], "src.train", *data, *SMALL, f"hydra.run.dir=runs/{name}")
        assert result.returncode == 0, result.output[-3000:]
        out[name] = cwd / "runs" / name
    return out


def metrics(run: Path) -> dict[str, float]:
    import json

    return json.loads((run / "metrics.json").read_text())["metrics"]


def test_a_hub_id_read_offline_from_the_cache_trains_as_the_same_images_in_an_image_folder(sets, runs):
    # the library's cache layout of a namespaced id: <owner>___<name>/default/0.0.0/<revision>/<name>-<split>.arrow
    assert sets["cached"].relative_to(sets["cache"]).parts[0] == "someone___fashion_tiny"
    folder, hub = metrics(runs["folder"]), metrics(runs["hub"])
    assert hub["test/acc"] > 0.7
    assert abs(hub["test/acc"] - folder["test/acc"]) <= 0.01, (hub, folder)


def test_a_streamed_set_gives_the_metrics_of_the_cached_path(runs):
    hub, stream = metrics(runs["hub"]), metrics(runs["stream"])
    assert hub.keys() == stream.keys()
    assert all(abs(stream[k] - hub[k]) <= 1e-3 for k in hub), (stream, hub)


def test_eval_predict_calibrate_compare_and_the_duplicate_audit_work_on_a_hub_run(sets, runs):
    cwd, cache, ckpt = sets["root"], sets["cache"], runs["hub"] / "checkpoints" / "last.ckpt"
    # eval of the streamed run (streamed test split) gives the cached run's accuracy
    evaluated = run_cli(cwd, cache, "src.eval", f"ckpt_path={runs['stream'] / 'checkpoints' / 'last.ckpt'}",
                        "logger=none")
    assert evaluated.returncode == 0, evaluated.output[-3000:]
    assert f"acc={metrics(runs['hub'])['test/acc']:.4f}" in evaluated.output
    bags = sets["folder"] / "test" / "8_Bag"
    predicted = run_cli(cwd, cache, "src.predict", f"ckpt_path={ckpt}", f"inputs={bags}", "output=bags.csv")
    assert predicted.returncode == 0, predicted.output[-3000:]
    with open(cwd / "bags.csv", newline="") as f:
        classes = [row["class"] for row in csv.DictReader(f)]
    assert len(classes) == 10 and classes.count("8_Bag") >= 7  # the ClassLabel's names
    assert "Predictions (fashion_tiny classes)" in predicted.output  # the set's name (the id's last part)
    calibrated = run_cli(cwd, cache, "src.calibrate", f"ckpt_path={ckpt}")
    assert calibrated.returncode == 0, calibrated.output[-3000:]
    compared = run_cli(cwd, cache, "src.compare", str(runs["hub"]), str(runs["stream"]))
    assert compared.returncode == 0, compared.output[-3000:]
    audited = run_cli(cwd, cache, "src.audit", "duplicates", "data=hf", f"data.path={sets['hub']}",
                      "data.image_size=28", "data.channels=1")
    assert audited.returncode == 0, audited.output[-3000:]
    assert "duplicates.csv" in audited.output


def test_a_table_set_trains_on_its_columns_predicts_a_table_file_and_exports_to_onnx(sets, tmp_path):
    cache = sets["cache"]
    result = run_cli(tmp_path, cache, "src.train", "data=hf", f"data.path={sets['penguins']}", "trainer.max_epochs=1",
                     "logger=none", "callbacks.progress_bar=null", "hydra.run.dir=penguins")
    assert result.returncode == 0, result.output[-3000:]
    assert metrics(tmp_path / "penguins")["test/acc"] > 0.6
    import pandas as pd

    pd.read_parquet(next((sets["penguins"] / "data").glob("test-*"))).drop(columns="species").to_csv(
        tmp_path / "new.csv", index=False)
    predicted = run_cli(tmp_path, cache, "src.predict", "ckpt_path=penguins/checkpoints/last.ckpt",
                        "inputs=new.csv", "output=p.csv")
    assert predicted.returncode == 0, predicted.output[-3000:]
    with open(tmp_path / "p.csv", newline="") as f:
        assert {row["class"] for row in csv.DictReader(f)} <= {"Adelie", "Chinstrap", "Gentoo"}
    assert "Predictions (penguins classes)" in predicted.output
    exported = run_cli(tmp_path, cache, "src.export", "ckpt_path=penguins/checkpoints/last.ckpt", "format=onnx",
                       "output=penguins.onnx")
    assert exported.returncode == 0, exported.output[-3000:]
    assert "outputs match PyTorch" in exported.output
    import json

    described = json.loads((tmp_path / "penguins.onnx.json").read_text())
    assert described["data"] == "penguins" and described["class_names"] == ["Adelie", "Chinstrap", "Gentoo"]


def test_a_train_only_set_gets_the_templates_test_fraction_and_folds(sets, tmp_path):
    result = run_cli(tmp_path, sets["cache"], "src.train", "data=hf", f"data.path={sets['train_only']}", *SMALL[:2],
                     "trainer.max_epochs=1", "logger=none", "data.num_folds=3", "data.fold=1",
                     "data.test_fraction=0.25", "hydra.run.dir=folds")
    assert result.returncode == 0, result.output[-3000:]
    import torch

    ckpt = torch.load(tmp_path / "folds" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["HFDataModule"]["class_names"] == ["0", "1", "7", "8"]  # an integer label's values
    assert metrics(tmp_path / "folds")["test/acc"] > 0.4


@pytest.mark.parametrize("args, fragments", [
    (["data.path=not_cached_anywhere"], ["HF_HUB_OFFLINE", "datasets_cache"]),
    (["data.path={hub}", "data.test_split=validation"], ["data.test_split=validation", "train, test"]),
    (["data.path={penguins}", "data.label_key=island"], ["'island'", "not a ClassLabel or integer"]),
    (["data.path={words}"], ["no Image column and no numeric or text column"]),
])
def test_each_bad_input_ends_in_one_sentence(sets, tmp_path, args, fragments):
    if "{words}" in " ".join(args):  # a set whose only other column is a list: nothing a model can read
        from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

        features = Features({"tokens": Sequence(Value("string")), "label": ClassLabel(names=["a", "b"])})
        rows = {"tokens": [["x"], ["y"]] * 5, "label": [0, 1] * 5}
        DatasetDict({"train": Dataset.from_dict(rows, features=features)}).save_to_disk(str(tmp_path / "words"))
    args = [a.format(hub=sets["hub"], penguins=sets["penguins"], words=tmp_path / "words") for a in args]
    result = run_cli(tmp_path, sets["cache"], "src.train", "data=hf", *args, "logger=none")
    assert_one_sentence(result, *fragments)


def test_a_gated_set_without_a_token_ends_in_one_sentence(tmp_path):
    """The Hub answers a gated repository's API calls without a token with 401 and `X-Error-Code: GatedRepo`;
    a local endpoint (HF_ENDPOINT on 127.0.0.1) answers so, and huggingface_hub and datasets take their own
    error path to the one sentence."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Gated(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = json.dumps({"error": "Access to dataset someone/gated_set is restricted."}).encode()
            self.send_response(401)
            self.send_header("X-Error-Code", "GatedRepo")
            self.send_header("X-Error-Message", "Access to dataset someone/gated_set is restricted. You must have "
                                                "access to it and be authenticated to access it. Please log in.")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gated)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_DATASETS_OFFLINE")}
        env.update(PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="120", HF_HOME=str(tmp_path / "hf_home"),
                   HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}", HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
        result = CliResult(run_module("src.train", ["data=hf", "data.path=someone/gated_set", "logger=none"],
                                      tmp_path, env, timeout=120, new_interpreter=True), tmp_path)
    finally:
        server.shutdown()
    assert_one_sentence(result, "data.path=someone/gated_set is a gated dataset", "HF_TOKEN")


def test_the_label_audit_finds_flipped_species_of_a_hub_table(sets, tmp_path):
    """12 training rows of the penguins set get another species (seeded); `src.audit --run` trains 3 folds
    of the Hub set and cleanlab names the flipped rows by their `train/<row>` ids."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "flipped" / "data").mkdir(parents=True)
    flipped = set()
    for part in (sets["penguins"] / "data").glob("*.parquet"):
        table = pq.read_table(part)
        if part.name.startswith("train"):
            frame, rng = table.to_pandas(), np.random.default_rng(0)
            for row in rng.choice(len(frame), 12, replace=False).tolist():
                frame.loc[row, "species"] = (frame.loc[row, "species"] + 1 + rng.integers(2)) % 3
                flipped.add(f"train/{row}")
            table = pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False)
        pq.write_table(table, tmp_path / "flipped" / "data" / part.name)
    result = run_cli(tmp_path, sets["cache"], "src.audit", "--run", "data=hf", f"data.path={tmp_path / 'flipped'}",
                     "model=mlp", "trainer=cpu", "logger=none", "trainer.max_epochs=10", "folds=3",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode == 0, result.output[-3000:]
    with open(tmp_path / "sweep" / "label_issues.csv", newline="") as f:
        named = {row["sample"] for row in csv.DictReader(f)}
    assert len(named & flipped) >= 9 and len(named & flipped) >= 0.75 * len(named), (sorted(named), sorted(flipped))

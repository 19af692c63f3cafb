"""`data=csv` on real tables: the penguins (text columns, missing values) with each `data.missing` policy,
scikit-learn's wine and breast-cancer data written to CSV files, Parquet, and the one-sentence errors."""

from __future__ import annotations

import logging

import pytest
import torch

from src.builders import build_datamodule
from tests.own_data import penguins_csv, user_error, write_sklearn_csv

FAST = ["model=mlp", "trainer=cpu", "logger=none", "callbacks.progress_bar=null", "callbacks.model_summary=null",
        "callbacks.early_stopping=null"]


def csv_data(compose, path, target, *extra):
    cfg = compose(["data=csv", f"data.path={path}", f"data.target={target}", *extra])
    return cfg, build_datamodule(cfg.data)


def test_penguins_missing_values_stop_the_run_in_one_sentence(compose):
    with user_error(r"penguins.csv has missing values in bill_length_mm \(2 rows\), bill_depth_mm \(2 rows\), "
                    r"flipper_length_mm \(2 rows\), body_mass_g \(2 rows\), sex \(11 rows\); 11 rows in all: set "
                    r"data.missing=drop to leave those rows out, or data.missing=mean"):
        csv_data(compose, penguins_csv(), "species")


@pytest.mark.parametrize("missing,rows", [("drop", 333), ("mean", 344)])
def test_penguins_train_to_095_with_one_hot_text_columns(compose, missing, rows):
    from src.train import train

    cfg, dm = csv_data(compose, penguins_csv(), "species", f"data.missing={missing}")
    dm.setup("fit")
    assert len(dm.train_split) + len(dm.val_split) + len(dm.test_split) == rows
    assert dm.class_names == ["Adelie", "Chinstrap", "Gentoo"]
    columns = dm.encoder.columns
    assert {"island=Biscoe", "island=Dream", "island=Torgersen", "sex=female", "sex=male"} <= set(columns)
    assert list(cfg.data.input_shape) == [len(columns)] == [10]  # 5 numbers (year included) + 3 islands + 2 sexes
    x = dm.train_split.inputs
    numeric = [columns.index(c) for c in ("bill_length_mm", "body_mass_g", "year")]
    assert torch.allclose(x[:, numeric].mean(0), torch.zeros(3), atol=1e-5)  # standardised on the training rows
    assert torch.allclose(x[:, numeric].std(0, unbiased=False), torch.ones(3), atol=0.01)  # mean-filled: a bit less
    one_hot = x[:, [columns.index(c) for c in ("island=Biscoe", "island=Dream", "island=Torgersen")]]
    assert set(one_hot.unique().tolist()) == {0.0, 1.0} and torch.equal(one_hot.sum(1), torch.ones(len(x)))
    assert dm.test_split.names[0].isdigit()  # rows are named by their number in the file

    metrics = train(compose(["data=csv", f"data.path={penguins_csv()}", "data.target=species",
                             f"data.missing={missing}", "trainer.max_epochs=20", *FAST]))
    assert metrics["test/acc"] >= 0.95


@pytest.mark.parametrize("name,classes,accuracy", [("wine", 3, 0.9), ("breast_cancer", 2, 0.9)])
def test_sklearn_tables_written_to_csv_train(compose, tmp_path, name, classes, accuracy):
    from src.train import train

    path = tmp_path / f"{name}.csv"
    target = write_sklearn_csv(path, name)
    metrics = train(compose(["data=csv", f"data.path={path}", f"data.target={target}", "trainer.max_epochs=6",
                             *FAST]))
    cfg = compose(["data=csv", f"data.path={path}", f"data.target={target}"])
    assert cfg.data.num_classes == classes and cfg.data.name == name
    assert metrics["test/acc"] >= accuracy


def test_parquet_reads_as_the_csv_and_without_pyarrow_says_what_to_install(compose, tmp_path, monkeypatch):
    import pandas as pd

    pytest.importorskip("pyarrow")
    frame = pd.read_csv(penguins_csv())
    frame.to_parquet(tmp_path / "penguins.parquet")
    _, from_csv = csv_data(compose, penguins_csv(), "species", "data.missing=drop")
    _, from_parquet = csv_data(compose, tmp_path / "penguins.parquet", "species", "data.missing=drop")
    for dm in (from_csv, from_parquet):
        dm.setup("fit")
    assert torch.equal(from_csv.test_split.inputs, from_parquet.test_split.inputs)

    def no_pyarrow(*args, **kwargs):
        raise ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")

    monkeypatch.setattr(pd, "read_parquet", no_pyarrow)
    frame.head(20).to_parquet(tmp_path / "other.parquet")
    with user_error(r"reading the Parquet file .*other.parquet needs pyarrow; install it with pip install"):
        csv_data(compose, tmp_path / "other.parquet", "species", "data.missing=drop")


def test_unseen_categories_encode_as_zeros_with_a_counted_warning(caplog):
    import pandas as pd

    from src.data.table_encoding import TableEncoder

    train = pd.DataFrame({"colour": ["red", "blue", "red"], "size": [1.0, 2.0, 3.0]})
    encoder = TableEncoder.fit(train, ["colour", "size"])
    assert encoder.columns == ["colour=blue", "colour=red", "size"]
    new = pd.DataFrame({"colour": ["green", "blue", "mauve"], "size": [2.0, 2.0, 2.0]})
    with caplog.at_level(logging.WARNING):
        x = TableEncoder.from_state(encoder.state()).encode(new, what="new rows")
    assert x.tolist() == [[0, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert "new rows: 2 value(s) of categories the training split lacks (2 in colour) are encoded as all zeros" \
        in caplog.text


def test_table_mistakes_are_one_sentence(compose, tmp_path):
    with user_error(r"data.target: 'specis' is not a column of .*penguins.csv; did you mean species\?"):
        csv_data(compose, penguins_csv(), "specis")
    with user_error(r"data.features: 'beak' is not a column"):
        csv_data(compose, penguins_csv(), "species", "data.features=[beak]", "data.missing=drop")
    with user_error(r"data.missing must be error, mean or drop, got 'zero'"):
        csv_data(compose, penguins_csv(), "species", "data.missing=zero")
    with user_error(r"there is no table at .*absent.csv; pass data.path=FILE"):
        csv_data(compose, tmp_path / "absent.csv", "species")
    one_class = tmp_path / "one.csv"
    one_class.write_text("x,y\n1,a\n2,a\n3,a\n")
    with user_error(r"the target column 'y' of .*one.csv has 1 distinct value\(s\); classification needs at least two"):
        csv_data(compose, one_class, "y")
    rare = tmp_path / "rare.csv"
    rare.write_text("x,y\n" + "".join(f"{i},a\n" for i in range(20)) + "21,b\n")
    with user_error(r"class 'b' has only 1 sample\(s\) in .*rare.csv, but carving the test split by class needs"):
        csv_data(compose, rare, "y")

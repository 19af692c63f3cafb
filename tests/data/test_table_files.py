"""Tables as people save them: the penguins with semicolons and decimal commas, tab-separated, as latin-1 text,
as an Excel sheet, and the one sentence without openpyxl (its absence simulated in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from src.builders import build_datamodule
from tests.own_data import penguins_csv, user_error

ROOT = Path(__file__).resolve().parents[2]


def penguins() -> pd.DataFrame:
    return pd.read_csv(penguins_csv())


def splits_of(compose, path, *extra):
    cfg = compose(["data=csv", f"data.path={path}", "data.target=species", "data.missing=drop", *extra])
    dm = build_datamodule(cfg.data)
    dm.setup("fit")
    return dm




def test_semicolons_with_decimal_commas_and_tabs_read_as_the_comma_csv(compose, tmp_path):
    frame = penguins()
    frame.to_csv(tmp_path / "semicolons.csv", sep=";", decimal=",", index=False)
    frame.to_csv(tmp_path / "tabs.csv", sep="\t", index=False)
    assert "39,1;18,7" in (tmp_path / "semicolons.csv").read_text()  # really decimal commas
    reference = splits_of(compose, penguins_csv())
    for name in ("semicolons.csv", "tabs.csv"):
        dm = splits_of(compose, tmp_path / name)
        assert dm.encoder.columns == reference.encoder.columns
        assert torch.equal(dm.test_split.inputs, reference.test_split.inputs), name


def test_latin1_text_is_detected_or_read_with_the_named_encoding(compose, tmp_path, caplog):
    frame = penguins()
    frame["island"] = frame["island"].replace({"Dream": "Île de Rêve", "Biscoe": "Bîscoé"})
    path = tmp_path / "latin.csv"
    frame.to_csv(path, index=False, encoding="latin-1")
    with pytest.raises(UnicodeDecodeError):
        path.read_text(encoding="utf-8")
    with caplog.at_level("WARNING"):
        detected = splits_of(compose, path)
    assert "is not UTF-8: read as" in caplog.text
    assert {"island=Bîscoé", "island=Île de Rêve", "island=Torgersen"} <= set(detected.encoder.columns)
    named = splits_of(compose, path, "data.encoding=latin-1")
    assert named.encoder.columns == detected.encoder.columns
    with user_error(r"latin.csv is not utf-8 text \(byte \d+ cannot be decoded\); set data.encoding to the file's"):
        splits_of(compose, path, "data.encoding=utf-8")


def test_an_excel_sheet_trains_and_reads_as_the_csv(compose, tmp_path):
    from src.train import train

    pytest.importorskip("openpyxl")
    path = tmp_path / "penguins.xlsx"
    penguins().to_excel(path, index=False)
    reference, sheet = splits_of(compose, penguins_csv()), splits_of(compose, path)
    assert torch.allclose(sheet.test_split.inputs, reference.test_split.inputs)
    metrics = train(compose(["data=csv", f"data.path={path}", "data.target=species", "data.missing=drop",
                             "model=mlp", "trainer=cpu", "logger=none", "trainer.max_epochs=8",
                             "callbacks.progress_bar=null", "callbacks.model_summary=null"]))
    assert metrics["test/acc"] >= 0.9


def test_without_openpyxl_an_excel_file_is_refused_in_one_sentence(tmp_path):
    pytest.importorskip("openpyxl")
    path = tmp_path / "penguins.xlsx"
    penguins().head(30).to_excel(path, index=False)
    # A fresh interpreter in which `import openpyxl` fails, as on a machine without the package.
    code = ("import sys; sys.modules['openpyxl'] = None; sys.argv = sys.argv[:1] + sys.argv[1:]; "
            "import runpy; runpy.run_module('src.train', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code, "data=csv", f"data.path={path}", "data.target=species",
                             "data.missing=drop", f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: reading the Excel file {path} needs openpyxl; install it with pip install '.[excel]' "
                      "(or pip install openpyxl), or save the table as CSV."], result.stderr
    assert "Traceback" not in result.stderr

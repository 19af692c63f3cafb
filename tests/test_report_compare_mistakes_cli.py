"""Mistakes with the analysis commands' inputs, typed as a user types them, end in one sentence of at most ~300
characters: a file that is not a checkpoint as ckpt_path, a metric no run records, a sweep split by a key it
does not vary, a sweep compared with a single run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, CliResult, assert_one_sentence, run_module


def run_cli(cwd: Path, module: str, *args: str) -> CliResult:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="120")
    return CliResult(run_module(module, args, cwd, env), cwd)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A real sweep of two seeds (digits, MLP, 1 epoch) that does not vary the model."""
    cwd = tmp_path_factory.mktemp("sweep")
    result = run_cli(cwd, "src.train", "-m", "seed=1,2", "trainer=cpu", "trainer.max_epochs=1", "logger=none",
                     "callbacks=[model_checkpoint]", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.output[-3000:]
    return cwd / "sweep"


@pytest.mark.parametrize("module", ["src.eval", "src.calibrate"])
def test_a_csv_file_as_checkpoint_is_one_sentence(cli_in_process, tmp_path, module):
    (tmp_path / "test_predictions.csv").write_text("sample,true,predicted\n0,a,b\n")
    line = assert_one_sentence(cli_in_process(module, "ckpt_path=test_predictions.csv"),
                               "test_predictions.csv is not a readable PyTorch checkpoint (it starts with b'samp'",
                               "pass a .ckpt file that src.train wrote")
    assert len(line) <= 300, line


def test_report_of_a_metric_no_run_records_names_the_recorded_ones(cli_in_process, sweep):
    line = assert_one_sentence(cli_in_process("src.report", str(sweep), "--metrics", "test/acc,test/acc_x"),
                               "--metrics test/acc_x: no run records it; did you mean test/acc? the runs record ",
                               "test/loss")
    assert len(line) <= 300, line
    assert not (sweep / "report.csv").exists()


def test_compare_by_a_key_the_sweep_does_not_vary_is_one_short_sentence(cli_in_process, sweep):
    line = assert_one_sentence(cli_in_process("src.compare", str(sweep), "--by", "model"),
                               f"--by model splits {sweep} into 1 group(s) (", "it needs exactly two: split by an "
                               "override its runs differ in (seed), or pass two sweep folders.")
    assert len(line) <= 300, line


def test_compare_of_a_sweep_and_a_single_run_says_they_cannot_be_paired(cli_in_process, sweep):
    for first, second in ((sweep, sweep / "0"), (sweep / "0", sweep)):
        line = assert_one_sentence(cli_in_process("src.compare", str(first), str(second)),
                                   f"{sweep} is a sweep and {sweep / '0'} a single run, which cannot be paired; pass "
                                   "two sweeps (runs paired by seed), two runs")
        assert "holds no test predictions" not in line and len(line) <= 300, line

"""`python -m src.reproduce` end to end on one tiny recipe (iris, 2 epochs), plus the rows of recipes
whose data is missing here (MNIST): one Hydra multirun, then docs/course_notes_results.md."""

import json

import pytest


def table_rows(markdown: str) -> dict[str, dict[str, str]]:
    """{experiment name: {column: cell}} of the Markdown table."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        row = dict(zip(header, cells, strict=True))
        rows[row["experiment"].strip("`")] = row
    return rows


def test_reproduce_runs_one_sweep_and_writes_the_table(cli):
    result = cli("src.reproduce", "--only", "notes0_iris_2features", "notes1_cnn_mnist", "notes4_dropout_cnn_mnist",
                 "--max-epochs", "2")
    assert result.returncode == 0, result.output[-3000:]
    assert "Traceback" not in result.output

    (sweep,) = (result.cwd / "logs" / "reproduce").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0"]  # one multirun, one job: only iris has its data here
    metrics = json.loads((jobs[0] / "metrics.json").read_text())["metrics"]
    info = json.loads((sweep / "reproduce.json").read_text())
    assert "-m src.train -m experiment=notes0_iris_2features" in info["command"]

    table = (result.cwd / "docs" / "course_notes_results.md").read_text()
    assert "Quick run" in table and "trainer.max_epochs=2" in table
    rows = table_rows(table)
    assert list(rows) == ["notes0_iris_2features", "notes1_cnn_mnist", "notes4_dropout_cnn_mnist"]

    iris = rows["notes0_iris_2features"]
    assert iris["notes"] == "0" and iris["metric"] == "test/acc" and iris["notes' number"] == "—"
    assert iris["ours"] == f"{metrics['test/acc']:.4f}"
    assert iris["data"] == "iris" and iris["epochs"] == "2 (2,000 steps)"  # 2 epochs of 1,000 full-batch steps
    assert iris["device"].startswith(("cpu", "cuda")) and iris["wall time"].endswith(" s")
    assert "no iris accuracy" in iris["status and notes"]

    mnist = rows["notes1_cnn_mnist"]
    assert mnist["notes' number"] == "0.9866" and mnist["ours"] == "—"
    notes = mnist["status and notes"]
    assert notes.startswith("**not run: data missing**")
    assert "data/MNIST/raw/" in notes and "train-images-idx3-ubyte.gz" in notes
    assert "`python -m src.train experiment=notes1_cnn_mnist`" in notes

    params = rows["notes4_dropout_cnn_mnist"]  # counted on the net the config builds: no data needed
    assert params["metric"] == "params" and params["notes' number"] == params["ours"] == "225,546"
    assert params["difference"] == "+0" and "not run: data missing" in params["status and notes"]


def test_report_rows_for_bounds_stand_ins_and_failures(tmp_path, monkeypatch):
    """The table logic on hand-made job results: a bound (XOR perceptron), a stand-in, a failed job."""
    from src.reproduce import compose_recipes
    from src.runs.reproduction import Recipe, table_row

    monkeypatch.chdir(tmp_path)
    recipes = {r.name: r for r in compose_recipes(["notes3_perceptron_xor", "notes1_cnn_fashion_mnist"], [])}
    xor = recipes["notes3_perceptron_xor"]
    xor.job_dir, xor.results = tmp_path, {"metrics": {"test/acc": 0.5}, "epochs": 101, "steps": 10_001, "wall_s": 3.2}
    row = table_row(xor, "cpu (2 cores)")
    assert row["notes' number"] == "≤ 0.7500" and row["difference"] == "within (≤ 0.7500)"
    assert row["epochs"] == "101 (10,001 steps)" and row["wall time"] == "3 s"

    stand_in = recipes["notes1_cnn_fashion_mnist"]
    stand_in.job_dir, stand_in.results = tmp_path, {"metrics": {"test/acc": 0.91}}
    row = table_row(stand_in, "cpu")
    assert row["difference"] == "n/a (stand-in)" and row["data"] == "fashion_mnist (stand-in)"
    assert "stand-in: Fashion-MNIST stands in for MNIST" in row["status and notes"]

    failed = Recipe("x", stand_in.config, stand_in.notes_result, job_dir=tmp_path, results={"error": "boom"})
    assert table_row(failed, "cpu")["status and notes"].startswith("**failed**: boom")


def test_unknown_experiment_is_one_sentence(capsys):
    from src.reproduce import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "notes9_nothing"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --only notes9_nothing: no such experiment") and error.count("\n") == 1

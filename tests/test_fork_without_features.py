"""A fork can delete every optional feature: the repository's tracked files are copied, every file that
docs/development.md's table "Optional features and the files they own" lists is deleted, and in the copy
every remaining module of src/ imports, the default job trains as a user types it, and the core's tests pass.
The table is read from the docs page, so the page and this test cannot drift apart: a listed file that is
missing (renamed, moved) fails here, and so does a core file that still imports a deleted one at its top."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = ROOT / "docs" / "development.md"
HEADING = "## Optional features and the files they own"
COLUMNS = ["feature", "chosen by", "files"]
# The core's tests run in the copy: the module, the in-memory and tensor data modules, the schema, the error
# path, train / eval / predict / export through the CLI (one shared training run), and of tests/test_train_cli.py
# the quick cases (its entry-point case names src.audit and src.visualize, two deleted features).
CORE_TESTS = [
    "tests/models/test_classifier.py",
    "tests/data/test_in_memory_datamodules.py",
    "tests/data/test_tensor_loader.py",
    "tests/config/test_schema.py",
    "tests/test_errors.py",
    "tests/test_eval_report_cli.py",
    "tests/test_train_cli.py::test_bad_input_stops_with_one_sentence",
    "tests/test_train_cli.py::test_eval_bad_checkpoints",
]


def feature_table(text: str) -> dict[str, list[str]]:
    """{feature: [the paths its row lists]} of the table under HEADING (a folder ends with `/`)."""
    assert HEADING in text, f"{DOCS.name} has no section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    assert len(lines) > 2, f"no table under {HEADING!r}"
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert cells[0] == COLUMNS, f"the table's columns are {cells[0]}, not {COLUMNS}"
    rows = {}
    for row in cells[2:]:
        assert len(row) == len(COLUMNS), f"a row of {len(row)} cells (a `|` inside a cell?): {row}"
        feature, chosen_by, files = row
        paths = re.findall(r"`([^`]+)`", files)
        assert feature and chosen_by and paths, f"a row without a feature, a choice or files: {row}"
        assert feature not in rows, f"feature {feature!r} has two rows"
        rows[feature] = paths
    return rows


def tracked_files() -> list[str]:
    """The repository's tracked files that are in the working tree (`git ls-files`)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("the repository's file list needs git and a git checkout")
    done = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [path for path in done.stdout.split("\0") if path and (ROOT / path).is_file()]


def listed_files(rows: dict[str, list[str]], tracked: list[str]) -> set[str]:
    """Every tracked file the table lists (a folder: every file under it); a path that names nothing fails."""
    missing, files = [], set()
    for feature, paths in rows.items():
        for path in paths:
            if path.endswith("/"):
                under = {f for f in tracked if f.startswith(path)}
                if not under:
                    missing.append(f"{feature}: {path} (no tracked file under this folder)")
                files |= under
            elif path in tracked:
                files.add(path)
            else:
                kind = "a folder: write it with a trailing /" if (ROOT / path).is_dir() else "not a tracked file"
                missing.append(f"{feature}: {path} ({kind})")
    assert not missing, "the table of docs/development.md names paths the repository lacks:\n" + "\n".join(missing)
    return files


def fork_without_features(dest: Path) -> set[str]:
    """The repository's tracked files copied into `dest`, less every file of the table; the deleted files."""
    tracked = tracked_files()
    deleted = listed_files(feature_table(DOCS.read_text()), tracked)
    for path in tracked:
        if path not in deleted:
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, dest / path)
    return deleted


def run_in(copy: Path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    """`python args` in the copy, with only the copy importable and one thread, in a new interpreter."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "COV_"))}
    env.update(PYTHONPATH=str(copy), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HYDRA_FULL_ERROR="0",
               COLUMNS="120", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_table_lists_every_feature_with_files_that_exist():
    rows = feature_table(DOCS.read_text())
    assert len(rows) >= 15, sorted(rows)
    deleted = listed_files(rows, tracked_files())
    core_tests = [test.split("::")[0] for test in CORE_TESTS]
    for core in ("src/train.py", "src/builders.py", "src/models/classifier.py", "conf/train.yaml", *core_tests):
        assert core not in deleted, f"{core} is the core's, yet the table lists it"


def test_the_table_reader_refuses_a_renamed_file_and_a_folder_without_its_slash():
    text = DOCS.read_text()
    tracked = tracked_files()
    renamed = feature_table(text.replace("`src/shard.py`", "`src/shard_cli.py`", 1))
    with pytest.raises(AssertionError, match=r"shards: src/shard_cli\.py \(not a tracked file\)"):
        listed_files(renamed, tracked)
    no_slash = feature_table(text.replace("`src/sweeps/`", "`src/sweeps`", 1))
    with pytest.raises(AssertionError, match=r"src/sweeps \(a folder: write it with a trailing /\)"):
        listed_files(no_slash, tracked)
    with pytest.raises(AssertionError, match="columns"):
        feature_table(text.replace("| feature | chosen by | files |", "| feature | files |", 1))


@pytest.mark.slow
def test_the_core_trains_and_passes_its_tests_without_any_optional_feature(tmp_path):
    copy = tmp_path / "fork"
    deleted = fork_without_features(copy)
    assert "src/sweeps/search.py" in deleted and not (copy / "src" / "sweeps" / "search.py").exists()
    assert all(not (copy / path).exists() for path in deleted)

    # Every module of src/ that is left imports (a top-level import of a deleted file fails here).
    modules = sorted(".".join(p.relative_to(copy).with_suffix("").parts).removesuffix(".__init__")
                     for p in (copy / "src").rglob("*.py"))
    imported = run_in(copy, "-c", "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)",
                      *modules, timeout=300)
    assert imported.returncode == 0, imported.stderr[-4000:]

    trained = run_in(copy, "-m", "src.train", "trainer.max_epochs=2", timeout=300)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    (record,) = (copy / "logs" / "train" / "runs").glob("*/metrics.json")
    metrics = json.loads(record.read_text())["metrics"]
    assert 0 <= metrics["test/acc"] <= 1 and metrics["val/acc"] > 0.5, metrics  # the digits MLP learns

    tested = run_in(copy, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider", *CORE_TESTS, timeout=600)
    tail = (tested.stdout + tested.stderr)[-6000:]
    assert tested.returncode == 0, tail
    assert re.search(r"\b\d+ passed\b", tested.stdout) and " failed" not in tested.stdout, tail

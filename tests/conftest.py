"""Shared test helpers: run the CLI the way a user types it, and compose configs in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# One thread per test process and per run it starts: test files run in parallel (pytest-xdist), and
# several multi-threaded processes on few cores make OpenMP spin-wait (tiny steps 100x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess, cwd: Path) -> None:
        self.returncode, self.stdout, self.stderr, self.cwd = proc.returncode, proc.stdout, proc.stderr, cwd

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def run_dirs(self, task: str = "train") -> list[Path]:
        """Run folders (those holding a metrics.json or a .hydra folder) under cwd/logs/<task>."""
        base = self.cwd / "logs" / task
        return sorted(p.parent for p in base.rglob(".hydra"))

    def metrics(self, task: str = "train") -> dict[str, float]:
        (run,) = self.run_dirs(task)
        return json.loads((run / "metrics.json").read_text())["metrics"]


@pytest.fixture
def cli(tmp_path):
    """`cli("src.train", "data=iris", ...)` runs `python -m src.train data=iris ...` in a fresh folder."""

    def run(module: str, *args: str, timeout: int = 600) -> CliResult:
        env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="120")
        proc = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
        )
        return CliResult(proc, tmp_path)

    return run


@pytest.fixture
def compose(tmp_path):
    """`compose(["data=iris"])` -> the resolved train config, with run folders under tmp_path."""
    from hydra.core.global_hydra import GlobalHydra

    from src.config.compose import compose_run_config

    def run(overrides: list[str] = (), config_name: str = "train"):
        return compose_run_config([*overrides, f"paths.root_dir={tmp_path}"], tmp_path / "run", cwd=tmp_path,
                                  config_name=config_name)

    yield run
    GlobalHydra.instance().clear()

"""Shared test helpers: run the CLI the way a user types it, and compose configs in-process."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

# One thread per test process and per run it starts: test files run in parallel (pytest-xdist), and
# several multi-threaded processes on few cores make OpenMP spin-wait (tiny steps 100x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


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


def assert_one_sentence(result: CliResult, *fragments: str) -> str:
    """The command stopped as bad input must: exit code 2, no traceback, exactly one `error:` line on stderr,
    and that line holds every fragment. Returns the line."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, (result.returncode, result.output[-3000:])
    assert "Traceback" not in result.output, result.output[-3000:]
    assert len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


class _ForkServer:
    """tests/forkserver.py, started once per test process: each command runs in a new process forked from one
    that has torch and Lightning imported already (see that file), instead of a new interpreter that spends
    ~6 s importing them. TESTS_NEW_INTERPRETER=1 starts a new interpreter for every command instead."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "forkserver.py")], cwd=ROOT,
                                     env=dict(os.environ, PYTHONPATH=str(ROOT)), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        # Its replies are read by a thread into a queue: a wait with a timeout on the queue sees every line,
        # where select() on the pipe would miss lines already read into the pipe's buffer.
        self.replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_replies, daemon=True).start()
        hello = json.loads(self.replies.get() or '{"ready": false, "why": "it exited"}')
        self.why_not = hello["why"]
        if self.why_not:
            self.close()

    def _read_replies(self) -> None:
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put("")  # the server exited

    def _reply(self, timeout: float | None = None) -> dict:
        line = self.replies.get(timeout=timeout)
        if not line:
            raise RuntimeError(f"tests/forkserver.py exited with code {self.proc.wait()}")
        return json.loads(line)

    def run(self, cmd: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            request = dict(module=cmd[2], args=cmd[3:], cwd=str(cwd), env=env, stdout=str(out), stderr=str(err))
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            pid = self._reply()["pid"]
            try:
                code, timed_out = self._reply(timeout)["returncode"], False
            except queue.Empty:  # still running (the server reaps it only after this kill): stop it
                os.kill(pid, signal.SIGKILL)
                code, timed_out = self._reply()["returncode"], True
            stdout, stderr = (p.read_text(errors="replace") for p in (out, err))
        if timed_out:
            raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr)
        return subprocess.CompletedProcess(cmd, code, stdout, stderr)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


_fork_server: _ForkServer | None = None


def run_module(module: str, args, cwd: Path, env: dict, timeout: float = 600,
               new_interpreter: bool = False) -> subprocess.CompletedProcess:
    """`python -m module args` in cwd with env, its output captured: in a process forked from tests/forkserver.py,
    or in a new interpreter when `new_interpreter`, where forking is unavailable, or TESTS_NEW_INTERPRETER=1.
    A forked process gets fresh random states but shares the server's string-hash seed; tests that compare
    runs start some of them with `new_interpreter=True`, so that a result depending on it would show."""
    global _fork_server
    cmd = [sys.executable, "-m", module, *args]
    if not new_interpreter and os.environ.get("TESTS_NEW_INTERPRETER") != "1" and hasattr(os, "fork"):
        if _fork_server is None:
            import atexit

            _fork_server = _ForkServer()
            atexit.register(_fork_server.close)
        if not _fork_server.why_not:
            return _fork_server.run(cmd, cwd, env, timeout)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli(tmp_path):
    """`cli("src.train", "data=iris", ...)` runs `python -m src.train data=iris ...` in a fresh folder, as its own
    process (see `run_module`; `new_interpreter=True` starts a new interpreter)."""

    def run(module: str, *args: str, timeout: int = 600, new_interpreter: bool = False) -> CliResult:
        env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="120")
        return CliResult(run_module(module, args, tmp_path, env, timeout, new_interpreter), tmp_path)

    return run


@pytest.fixture
def cli_in_process(tmp_path, monkeypatch, capsys):
    """Like `cli`, with the same entry point and command line, but in this test's process: for commands that
    stop before training (bad input, --help), where a new interpreter would add only its start-up time.
    A command that trains runs through `cli`: its own process, as a user's."""
    import logging
    import runpy
    import traceback
    import warnings
    from types import SimpleNamespace

    from hydra.core.global_hydra import GlobalHydra

    def run(module: str, *args: str) -> CliResult:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "argv", [module, *args])
        monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
        monkeypatch.setenv("COLUMNS", "120")
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        GlobalHydra.instance().clear()
        code = 0
        try:
            with warnings.catch_warnings():  # runpy notes that the entry module was imported before (by tests)
                warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package",
                                        category=RuntimeWarning)
                runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:  # what the process would exit with
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)  # as the interpreter prints sys.exit("message")
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # an uncaught exception: the interpreter would print it and exit with 1
            traceback.print_exc()
            code = 1
        finally:
            GlobalHydra.instance().clear()
            for handler in root.handlers:
                if handler not in handlers:  # the run's log file (Hydra's job logging)
                    handler.close()
            root.handlers[:] = handlers
            root.setLevel(level)
        out = capsys.readouterr()
        return CliResult(SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err), tmp_path)

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

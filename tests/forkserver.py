"""A process that imports torch, Lightning and Hydra once, then forks one child per command line it is sent.

Each child is a new process, started like `python -m <module> <args>` in the command's folder and environment
(argv, sys.path, cwd, environment, stdin/stdout/stderr, fresh random states of random, NumPy and torch, but
the server's string-hash seed), and exits the way that command would (its exit code or the signal that
ended it), without the ~6 s of imports of a new interpreter.

Protocol, one JSON object per line: the test process writes a request
{"module", "args", "cwd", "env", "stdout", "stderr"} (the last two: files for the child's output) to this
process's stdin and reads {"pid": ...} when the child has started and {"returncode": ...} when it has
ended. Run as a script: `python tests/forkserver.py`; it answers {"ready": true} or {"ready": false,
"why": ...} first. End of input ends it.
"""

import json
import os
import sys
import threading

PRELOAD = ("numpy", "torch", "torchvision", "torchmetrics", "lightning.pytorch", "hydra", "omegaconf")


def reply(**message) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def preload() -> str | None:
    """Imports PRELOAD; returns why forking would be unsafe, or None."""
    import importlib

    try:
        for name in PRELOAD:
            importlib.import_module(name)
    except Exception as exc:  # the test process then starts a new interpreter per command
        return f"importing {name} failed: {exc!r}"
    if threading.active_count() != 1:  # a fork copies only the forking thread
        return f"the imports started threads: {threading.enumerate()}"
    return None


def serve() -> dict | None:
    """Answers requests until stdin ends (returns None), or returns the request in the forked child."""
    for line in sys.stdin.buffer:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            return request
        reply(pid=pid)
        _, status = os.waitpid(pid, 0)
        reply(returncode=os.waitstatus_to_exitcode(status))
    return None


def become(request: dict) -> None:
    """Turns this forked child into `python -m module args` started in the request's folder and environment."""
    import random

    import numpy as np
    import torch

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    os.close(devnull)
    # A new interpreter seeds these from the OS; a forked child would share the server's states. (The
    # string-hash seed is fixed at start-up and cannot be renewed here: see run_module in tests/conftest.py.)
    random.seed()
    np.random.seed(int.from_bytes(os.urandom(4), "little"))
    torch.seed()
    sys.argv = [request["module"], *request["args"]]
    sys.path[0] = os.getcwd()  # `python -m` puts the current folder first
    for entry in reversed(request["env"].get("PYTHONPATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(1, entry)


def main() -> None:
    why = preload()
    reply(ready=why is None, why=why)
    if why is not None:
        return
    request = serve()
    if request is None:
        return
    become(request)
    import runpy

    # As `python -m`: an uncaught exception prints its traceback and exits with 1; SystemExit exits with its code.
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

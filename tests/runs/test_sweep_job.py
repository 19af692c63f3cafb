"""A failed sweep job: which errors are recorded (and the sweep goes on) and which stop the sweep."""

from __future__ import annotations

import torch
from hydra.errors import InstantiationException

from src.errors import UserError
from src.runs.resume import AnotherRunInFolder
from src.runs.sweep_job import recorded_error

FAST = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none", "trainer.max_epochs=1"]


def wrapped(inner: BaseException) -> BaseException:
    """`inner` as Hydra's instantiate re-raises it: the cause of another exception."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise InstantiationException("Error in call to target") from exc
    except InstantiationException as outer:
        return outer


def test_user_errors_and_out_of_memory_are_recorded_faults_in_the_code_are_not():
    assert recorded_error(UserError("optimizer.lr must be positive.")) == "optimizer.lr must be positive."
    assert recorded_error(wrapped(UserError("data.fold=9 is out of range."))) == "data.fold=9 is out of range."
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")
    for exc in (oom, wrapped(oom)):
        assert recorded_error(exc) == ("out of memory (CUDA out of memory. Tried to allocate 2.00 GiB); lower "
                                       "data.batch_size or the model's size for this job.")
    for fault in (RuntimeError("shape mismatch"), KeyError("x"), wrapped(TypeError("bad call")), ZeroDivisionError()):
        assert recorded_error(fault) is None
    assert recorded_error(AnotherRunInFolder("logs/x already holds a run of other overrides.")) is None


def test_a_fault_in_the_code_ends_the_sweep_with_its_error_and_no_failed_record(cli):
    # math.sqrt takes no keyword argument: building the callback raises a TypeError, which is no user error.
    result = cli("src.train", "-m", "optimizer.lr=0.01,0.02", "+callbacks.fault._target_=math.sqrt",
                 "+callbacks.fault.x=4", *FAST)
    assert result.returncode == 1, result.output[-2000:]
    assert "Error executing job" in result.output and "takes no keyword arguments" in result.output
    (sweep,) = (result.cwd / "logs" / "train" / "multiruns").iterdir()
    assert not list(sweep.glob("*/failed.json")) and not list(sweep.glob("*/metrics.json"))

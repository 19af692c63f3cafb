"""StepHistory: the course notes' history rows, recorded inside training, equal to the notes' own loop."""

import csv

import pytest
import torch
import torch.nn.functional as F

from src.builders import build_datamodule
from src.callbacks.step_history import CURVES, StepHistory
from src.errors import UserError
from src.models.nets.linear import softmax_regression
from src.runs.history import read_history
from src.train import train

IRIS = ["experiment=notes0_iris_4features", "trainer.max_epochs=1", "callbacks.progress_bar=null",
        "callbacks.model_summary=null", "test=false"]


def seed_loop(x, y, x_val, y_val, steps: int, every: int) -> dict[int, tuple[float, float, float, float]]:
    """Notes 0's loop, as written there: full-batch SGD lr 0.01; a row every `every` epochs."""
    torch.manual_seed(42)  # the run's seed, before the net is built
    net = softmax_regression([4], 3)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    rows = {}
    for epoch in range(steps):
        optimizer.zero_grad()
        outputs = net(x)
        loss = F.cross_entropy(outputs, y)
        loss.backward()
        optimizer.step()
        if epoch % every == 0:
            with torch.no_grad():
                val = net(x_val)
            rows[epoch] = (loss.item(), (outputs.argmax(1) == y).float().mean().item(),
                           F.cross_entropy(val, y_val).item(), (val.argmax(1) == y_val).float().mean().item())
    return rows


def logged_rows(run_dir) -> dict[int, tuple[float, ...]]:
    (path,) = run_dir.rglob("metrics.csv")
    rows = {}
    for r in csv.DictReader(open(path)):
        if r.get("train/loss"):
            rows[int(r["step"])] = tuple(float(r[k] or "nan") for k in CURVES)
    return rows


@pytest.mark.parametrize("steps_per_call", [1000, 1])
def test_history_rows_equal_the_seed_loop_in_both_optimisation_paths(compose, tmp_path, steps_per_call):
    cfg = compose([*IRIS, "logger=csv", f"steps_per_call={steps_per_call}"])
    train(cfg)
    dm = build_datamodule(cfg.data)
    dm.setup()
    expected = seed_loop(dm.train_split.inputs, dm.train_split.targets, dm.val_split.inputs, dm.val_split.targets,
                         1000, 10)
    rows = logged_rows(tmp_path / "run")
    # one row every 10 steps and nothing else: the epoch-level curves stay off the loggers
    assert sorted(rows) == sorted(expected) == list(range(0, 1000, 10))
    for step, row in expected.items():
        assert rows[step] == pytest.approx(row, abs=1e-5), step


def test_history_is_read_back_by_optimizer_step(compose, tmp_path):
    train(compose(IRIS))  # TensorBoard logger
    history = read_history(tmp_path / "run")
    assert history.x_label == "step"
    for name in CURVES:
        assert [x for x, _ in history.curves[name]] == list(range(0, 1000, 10)), name
    assert history.curves["train/loss"][-1][1] < history.curves["train/loss"][0][1]


def test_without_the_history_the_curves_are_logged_per_epoch(compose, tmp_path):
    cfg = compose([*IRIS, "logger=csv", "callbacks.step_history=null", "data.steps_per_epoch=100",
                   "steps_per_call=1"])
    train(cfg)
    assert sorted(logged_rows(tmp_path / "run")) == [99]  # one epoch of 100 steps: one point, at its last step


def test_every_n_steps_must_be_a_positive_integer():
    with pytest.raises(UserError, match="every_n_steps must be a positive integer"):
        StepHistory(every_n_steps=0)

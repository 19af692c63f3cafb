"""The fast paths change speed, never results: K steps per Lightning call == one step per call."""

import csv

import pytest
import torch

from src.train import train


def run_iris(compose, steps_per_call: int, tmp_path):
    cfg = compose([
        "experiment=seed000_iris_4features", f"data.steps_per_call={steps_per_call}", "trainer.max_epochs=30",
        "logger=csv", "callbacks.progress_bar=null", "callbacks.model_summary=null",
    ])
    metrics = train(cfg)
    run = tmp_path / "run"
    (ckpt,) = (run / "checkpoints").glob("last*.ckpt")
    weights = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    rows = list(csv.DictReader(open(run / "csv" / "metrics.csv")))
    return metrics, weights, rows


@pytest.mark.parametrize("steps_per_call", [10, 7])
def test_steps_per_call_gives_identical_training(compose, tmp_path, steps_per_call):
    base_metrics, base_weights, base_rows = run_iris(compose, 1, tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "run")
    metrics, weights, rows = run_iris(compose, steps_per_call, tmp_path)
    for key in ("train/loss", "val/loss", "test/acc", "test/loss"):
        assert metrics[key] == pytest.approx(base_metrics[key], abs=1e-6), key
    for name, tensor in base_weights.items():
        assert torch.allclose(weights[name], tensor, atol=1e-6), name
    # curves are logged at the same optimizer steps (300 steps = 30 epochs x 10)
    steps = lambda rs: [int(r["step"]) for r in rs if r.get("train/loss")]  # noqa: E731
    assert steps(rows) == steps(base_rows) and steps(rows)[-1] == 299

"""The fast paths change speed, never results: K steps per Lightning call == one step per call."""

import csv

import pytest
import torch

from src.train import train


def run_iris(compose, steps_per_call: int, tmp_path):
    cfg = compose([
        "experiment=seed000_iris_4features", f"data.steps_per_call={steps_per_call}", "data.steps_per_epoch=10",
        "trainer.max_epochs=30", "callbacks.step_history=null",
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


def run_digits(compose, tmp_path, *overrides):
    """Two epochs of shuffled mini-batches (the image data sets' case); final weights and metrics."""
    import shutil

    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    cfg = compose(["data.batch_size=64", "trainer.max_epochs=2", "logger=none", "callbacks=none", "test=false",
                   "+trainer.enable_progress_bar=false", *overrides])
    import lightning as L

    from src.config import build

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build.build_datamodule(cfg.data)
    module = build.build_module(cfg.model, cfg.optimizer, cfg.scheduler)
    trainer = build.build_trainer(cfg.trainer, [], [])
    trainer.fit(module, datamodule=datamodule)
    return trainer, module


@pytest.mark.parametrize("scheduler", ["none", "onecycle"])
def test_k_steps_per_call_on_shuffled_minibatches_gives_identical_training(compose, tmp_path, scheduler):
    base_trainer, base = run_digits(compose, tmp_path, "data.steps_per_call=1", f"scheduler={scheduler}")
    trainer, module = run_digits(compose, tmp_path, "data.steps_per_call=10", f"scheduler={scheduler}")
    steps = 2 * -(-len(trainer.datamodule.train_split) // 64)  # two passes of batches of 64
    assert trainer.global_step == base_trainer.global_step == steps
    for (name, a), b in zip(base.state_dict().items(), module.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        expected = float(base_trainer.callback_metrics[key])
        assert float(trainer.callback_metrics[key]) == pytest.approx(expected, abs=1e-6), key
    if scheduler == "onecycle":  # the schedule spans the run's optimizer steps, not its Lightning calls
        assert trainer.lr_scheduler_configs[0].scheduler.total_steps == steps


def test_limit_train_batches_counts_optimizer_steps_with_k_steps_per_call(compose, tmp_path):
    trainer, _ = run_digits(compose, tmp_path, "data.steps_per_call=10", "trainer.limit_train_batches=3")
    assert trainer.global_step == 2 * 3 and trainer.num_training_batches == 1


def test_gradient_accumulation_takes_one_batch_per_lightning_step_whatever_steps_per_call(compose, tmp_path):
    base_trainer, base = run_digits(compose, tmp_path, "data.steps_per_call=1", "+trainer.accumulate_grad_batches=2")
    trainer, module = run_digits(compose, tmp_path, "data.steps_per_call=10", "+trainer.accumulate_grad_batches=2")
    assert module.automatic_optimization and trainer.datamodule.steps_per_call == 1
    assert trainer.global_step == base_trainer.global_step
    for (name, a), b in zip(base.state_dict().items(), module.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name

"""The fast paths change speed, never results: K steps per Lightning call == one step per call."""

import csv

import pytest
import torch

from src.train import train
from tests.conftest import assert_one_sentence


def run_iris(compose, steps_per_call: int, tmp_path):
    cfg = compose([
        "experiment=notes0_iris_4features", f"steps_per_call={steps_per_call}", "data.steps_per_epoch=10",
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
    # the same curves, one point per epoch (30 epochs of 10 steps); the values logged with `self.log` sit at
    # Lightning's step, which counts training_step calls: optimizer steps with K = 1, calls of K steps with K > 1
    curve = lambda rs: [(int(r["epoch"]), round(float(r["train/loss"]), 6)) for r in rs if r.get("train/loss")]  # noqa: E731
    assert curve(rows) == curve(base_rows) and [e for e, _ in curve(rows)] == list(range(30))
    steps = lambda rs: [int(r["step"]) for r in rs if r.get("train/loss")]  # noqa: E731
    assert steps(base_rows)[-1] == 299 and steps(rows)[-1] == 30 * -(-10 // steps_per_call) - 1


def run_digits(compose, tmp_path, *overrides):
    """Two epochs of shuffled mini-batches (the image data sets' case); final weights and metrics."""
    import shutil

    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    cfg = compose(["data.batch_size=64", "trainer.max_epochs=2", "logger=none", "callbacks=none", "test=false",
                   "+trainer.enable_progress_bar=false", *overrides])
    import lightning as L

    from src import builders

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    k = builders.steps_per_call(dict(cfg))  # as src.train builds them: K > 1 gives the K-step variants
    datamodule = builders.build_datamodule(cfg.data, cfg.get("augment"), k)
    module = builders.build_module(cfg.model, cfg.optimizer, cfg.scheduler, k)
    trainer = builders.build_trainer(cfg.trainer, [], [])
    trainer.fit(module, datamodule=datamodule)
    return trainer, module


@pytest.mark.parametrize("scheduler", ["none", "onecycle"])
def test_k_steps_per_call_on_shuffled_minibatches_gives_identical_training(compose, tmp_path, scheduler):
    base_trainer, base = run_digits(compose, tmp_path, "steps_per_call=1", f"scheduler={scheduler}")
    trainer, module = run_digits(compose, tmp_path, "steps_per_call=10", f"scheduler={scheduler}")
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
    trainer, _ = run_digits(compose, tmp_path, "steps_per_call=10", "trainer.limit_train_batches=3")
    assert trainer.global_step == 2 * 3 and trainer.num_training_batches == 1


@pytest.mark.parametrize("setting", ["+trainer.accumulate_grad_batches=2", "trainer.gradient_clip_val=1.0"])
def test_automatic_optimisation_features_with_k_steps_per_call_stop_with_one_sentence(compose, tmp_path, setting):
    from src.errors import UserError

    key = setting.lstrip("+").split("=")[0]
    with pytest.raises(UserError) as caught:  # refused before anything is built
        train(compose(["steps_per_call=10", setting, "logger=none", "callbacks=none"]))
    assert str(caught.value) == (
        f"{key} needs one optimizer step per Lightning step, but steps_per_call > 1 takes several in each "
        f"(Lightning's manual optimisation); set steps_per_call=1 or drop {key}.")
    trainer, _ = run_digits(compose, tmp_path, "steps_per_call=1", setting)  # one step per call: fine
    assert trainer.global_step > 0


@pytest.mark.parametrize("group", ["data", "model"])
def test_steps_per_call_set_on_the_data_or_model_config_is_refused_naming_the_training_setting(cli_in_process, group):
    result = cli_in_process("src.train", f"{group}.steps_per_call=5", "logger=none", "callbacks=none")
    assert_one_sentence(result, f"{group}.steps_per_call is not a setting of {group}=",
                        "did you mean the top-level setting steps_per_call?")

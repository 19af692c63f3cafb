"""Lightning's own callbacks, and a user's, work unchanged with one optimizer step per Lightning step
(the default `steps_per_call=1`): every hook sees one `(x, y)` batch and counts optimizer steps."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch

from src import builders

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null"]
EMA_AVAILABLE = hasattr(L.pytorch.callbacks, "EMAWeightAveraging")  # Lightning 2.6 and later


def fit(compose, callbacks: list[L.Callback], *overrides: str) -> tuple[L.Trainer, L.LightningModule]:
    """Fit the default digits job (in process, built as src.train builds it) with extra callbacks."""
    cfg = compose(["trainer.max_epochs=1", "logger=none", "callbacks=none", "test=false",
                   "+trainer.enable_progress_bar=false", *overrides])
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    k = builders.steps_per_call(dict(cfg))  # as src.train builds them: K > 1 gives the K-step variants
    datamodule = builders.build_datamodule(cfg.data, cfg.get("augment"), k)
    module = builders.build_module(cfg.model, cfg.optimizer, cfg.scheduler, k)
    trainer = builders.build_trainer(cfg.trainer, callbacks, [])
    trainer.fit(module, datamodule=datamodule)
    return trainer, module


class BatchReader(L.Callback):
    """A user's callback that reads the training batch and the step's output after every step."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, torch.Size, torch.Size, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        x, y = batch
        self.seen.append((batch_idx, trainer.global_step, x.shape, y.shape, float(outputs["loss"])))


def test_a_callback_reading_the_batch_gets_one_x_y_pair_per_optimizer_step(compose):
    reader = BatchReader()
    trainer, _ = fit(compose, [reader], "trainer.max_epochs=2")
    steps = trainer.global_step
    assert steps == 2 * trainer.num_training_batches and len(reader.seen) == steps
    assert [step for _, step, *_ in reader.seen] == list(range(1, steps + 1))  # one optimizer step per call
    for _, _, x_shape, y_shape, loss in reader.seen:
        assert x_shape[1:] == (1, 8, 8) and len(y_shape) == 1 and x_shape[0] == y_shape[0] <= 64
        assert loss > 0
    assert reader.seen[0][0] == 0 and reader.seen[-1][0] == trainer.num_training_batches - 1


def test_batch_size_and_learning_rate_finder_callbacks(compose):
    from lightning.pytorch.callbacks import BatchSizeFinder, LearningRateFinder

    sizes = BatchSizeFinder(mode="power", steps_per_trial=1, init_val=4, max_trials=2)
    rates = LearningRateFinder(min_lr=1e-4, max_lr=1.0, num_training_steps=15, update_attr=False)
    trainer, _ = fit(compose, [sizes, rates], "trainer.limit_train_batches=20", "trainer.limit_val_batches=2")
    assert sizes.optimal_batch_size == 8 and trainer.datamodule.batch_size == 8  # 4, then 8: two trials
    lrs = rates.optimal_lr.results["lr"]
    assert len(lrs) == 15 and lrs[0] == pytest.approx(1e-4, rel=0.2) and lrs == sorted(lrs)
    assert trainer.global_step == 20  # after the searches, the run itself


def logged(run_dir, key: str) -> list[tuple[int, float]]:
    (path,) = run_dir.rglob("metrics.csv")
    return [(int(r["step"]), float(r[key])) for r in csv.DictReader(open(path)) if r.get(key)]


def test_lr_monitor_per_step_and_lightnings_ema_from_the_command_line(cli):
    args = [*QUIET, "logger=csv", "trainer.max_epochs=2", "scheduler=onecycle", "trainer.log_every_n_steps=1",
            "+callbacks.lr_monitor._target_=lightning.pytorch.callbacks.LearningRateMonitor",
            "+callbacks.lr_monitor.logging_interval=step"]
    if EMA_AVAILABLE:
        args += ["+callbacks.average._target_=lightning.pytorch.callbacks.EMAWeightAveraging",
                 "+callbacks.average.decay=0.9"]
    result = cli("src.train", *args)
    assert result.returncode == 0, result.output[-3000:]
    (run,) = result.run_dirs()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    steps = ckpt["global_step"]
    rates = logged(run, "lr-Adam")
    assert [step for step, _ in rates] == list(range(steps))  # one learning rate per optimizer step
    peak = max(lr for _, lr in rates)
    assert rates[0][1] < peak and rates[-1][1] < rates[0][1]  # OneCycleLR's rise and fall, step by step
    if EMA_AVAILABLE:  # checkpoints hold the average, the raw weights beside it
        raw, average = ckpt["current_model_state"], ckpt["state_dict"]
        assert set(raw) == set(average) and any(not torch.equal(raw[k], average[k]) for k in raw)

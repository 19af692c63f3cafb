"""The TensorBoard views (confusion-matrix images, per-class scores, prediction grid, learning-curve
layout) in-process: the numbers they show, the figures, and runs without TensorBoard."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from src.callbacks.tensorboard_reports import EveryNEpochs, tag_name
from src.models.classifier import metrics_from_confusion
from src.models.metrics import per_class_metrics

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "trainer=cpu"]


def test_per_class_metrics_agree_with_torchmetrics_and_average_to_the_macro_scores():
    from torchmetrics.classification import (
        MulticlassConfusionMatrix,
        MulticlassF1Score,
        MulticlassPrecision,
        MulticlassRecall,
    )

    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (300,), generator=generator)
    preds = torch.where(torch.rand(300, generator=generator) < 0.6, target, torch.randint(0, 5, (300,)))
    preds[preds == 4] = 3  # class 4 is never predicted: precision 0 by convention
    matrix = MulticlassConfusionMatrix(5)(preds, target)
    scores = per_class_metrics(matrix)
    for name, metric in (("precision", MulticlassPrecision), ("recall", MulticlassRecall), ("f1", MulticlassF1Score)):
        expected = metric(num_classes=5, average=None)(preds, target)
        assert torch.allclose(scores[name], expected, atol=1e-6), name
        assert scores[name].mean() == pytest.approx(float(metrics_from_confusion(matrix)[name]), abs=1e-6)
    assert scores["support"].tolist() == torch.bincount(target, minlength=5).float().tolist()
    assert scores["precision"][4] == 0


def test_validation_views_are_logged_every_epoch_for_short_runs_and_spaced_out_for_long_ones():
    def trainer(epoch, max_epochs=-1, max_steps=-1, steps_per_epoch=1):  # the module counts its optimizer steps
        return SimpleNamespace(sanity_checking=False, is_global_zero=True, fast_dev_run=False, current_epoch=epoch,
                               max_epochs=max_epochs, max_steps=max_steps,
                               lightning_module=SimpleNamespace(optimizer_steps_per_epoch=lambda: steps_per_epoch))

    auto = EveryNEpochs(None, auto_logs=10)
    assert all(auto.due(trainer(e, max_epochs=5)) for e in range(5))
    logged = [e + 1 for e in range(1000) if auto.due(trainer(e, max_epochs=1000))]
    assert logged == list(range(100, 1001, 100))
    # notes3: max_steps 10,001 in "epochs" of 100 steps taken as one call -> 101 epochs
    assert auto.interval(trainer(0, max_steps=10_001, steps_per_epoch=100)) == 11
    assert EveryNEpochs(3, auto_logs=10).interval(trainer(0, max_epochs=1000)) == 3
    assert not auto.due(SimpleNamespace(**{**vars(trainer(0, max_epochs=5)), "fast_dev_run": True}))


def test_class_names_become_tag_components():
    assert [tag_name(n) for n in ("T-shirt/top", "0 - zero", "aquarium_fish", "??")] == [
        "T_shirt_top", "0_zero", "aquarium_fish", "class"]


def test_figures_render_with_class_names_many_classes_and_rgb_images():
    from src.figures.plots import (
        as_display_images,
        confusion_matrix_figure,
        learning_curves_figure,
        prediction_grid_figure,
        to_rgb,
    )

    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    for n, labels in ((10, names), (100, [f"class_{i}" for i in range(100)])):
        matrix = torch.randint(0, 20, (n, n)) + 30 * torch.eye(n, dtype=torch.long)
        image = to_rgb(confusion_matrix_figure(matrix, labels, "Confusion matrix, test"))
        assert image.shape[1] > 1000 and image.std() > 20
    rgb = as_display_images(torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8), 255.0)
    assert rgb.shape == (12, 32, 32, 3) and 0 <= rgb.min() and rgb.max() <= 1
    grid = to_rgb(prediction_grid_figure(rgb, list(range(10)) + [0, 1], list(range(10)) + [1, 0], names))
    red = (grid[..., 0] > 180) & (grid[..., 1] < 80) & (grid[..., 2] < 80)
    assert red.sum() > 100  # the two wrong predictions are framed in red
    curves = {"train/loss": [(1, 1.0), (2, 0.5)], "val/loss": [(1, 1.1), (2, 0.7)], "train/acc": [(1, 0.5), (2, 0.8)]}
    assert to_rgb(learning_curves_figure(curves, "epoch", "Learning curves")).std() > 20


def test_csv_logger_gets_per_class_scores_and_no_image_views_crash(compose, tmp_path):
    from src.runs.history import read_history
    from src.train import train

    metrics = train(compose(["logger=csv", "trainer.max_epochs=2", "callbacks=reports", *QUIET]))
    run = tmp_path / "run"
    rows = list(csv.DictReader(open(run / "csv" / "metrics.csv")))
    assert {"val/precision/0", "val/recall/9", "test/f1/3"} <= set(rows[0])
    assert sum(bool(r["val/f1/5"]) for r in rows) == 2  # once per validation epoch
    assert not any("/precision/" in k for k in metrics)  # per-class scores stay out of the final metrics
    assert not any("/precision/" in k for k in json.loads((run / "metrics.json").read_text())["metrics"])
    history = read_history(run)  # the CSV logs, for eval's learning_curves.png
    assert history.x_label == "epoch" and [x for x, _ in history.curves["val/acc"]] == [1.0, 2.0]


@pytest.mark.parametrize("overrides", [["debug=fdr"], ["logger=none", "trainer.max_epochs=1"]])
def test_fast_dev_run_and_no_logger_run_cleanly(compose, tmp_path, overrides):
    from src.train import train

    metrics = train(compose([*overrides, *QUIET]))
    assert np.isfinite(metrics["test/acc"])
    assert not (tmp_path / "run" / "tensorboard").exists()

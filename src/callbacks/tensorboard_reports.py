"""What a model does, in TensorBoard (and MLflow, W&B): confusion-matrix images, per-class scores, a
grid of test predictions and one chart per learning curve (train and validation together).

Every callback here copes with any set of loggers: images go to the loggers that take them
(TensorBoard's IMAGES, MLflow artifacts, W&B media: `log_image`), the chart layout
to TensorBoard's `SummaryWriter`, scalars to every logger (CSV too), and with no logger or under
`trainer.fast_dev_run` they do nothing. The matrices come from
`ClassificationModule` (`val_confusion_matrix` after each validation, `test_confusion_matrix` after
the test), so nothing is recomputed.

Runs of many short epochs (a tiny data set, a long run) would spend most of their time drawing
figures, so the validation callbacks run every `every_n_epochs` epochs; null (the default) means "about
`AUTO_LOGS` times per run": every epoch for short runs, evenly spaced for long ones.
"""

from __future__ import annotations

import math
import re
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import MLFlowLogger, WandbLogger

from src.callbacks.confusion_matrix import class_names
from src.errors import UserError
from src.figures.plots import as_display_images, confusion_matrix_figure, prediction_grid_figure, to_rgb
from src.models.metrics import per_class_metrics


# --- helpers ---------------------------------------------------------------------------------------
def active(trainer: L.Trainer) -> bool:
    """False under fast_dev_run (its loggers are dummies) and on processes other than rank 0."""
    return trainer.is_global_zero and not trainer.fast_dev_run


def image_loggers(trainer: L.Trainer) -> list[Any]:
    """The loggers that take images (TensorBoard, MLflow, W&B), on the main process only."""
    return takes_images(trainer.loggers) if active(trainer) else []


def summary_writers(trainer: L.Trainer) -> list[Any]:
    """The experiments of the loggers that are TensorBoard SummaryWriters (custom-scalar layouts)."""
    if not active(trainer):
        return []
    experiments = [getattr(logger, "experiment", None) for logger in trainer.loggers]
    return [e for e in experiments if callable(getattr(type(e), "add_custom_scalars", None))]


def tag_name(name: str) -> str:
    """A class name as a tag component: "T-shirt/top" -> "T_shirt_top", "0 - zero" -> "0_zero"."""
    return re.sub(r"\W+", "_", str(name)).strip("_") or "class"


def expected_epochs(trainer: L.Trainer) -> int | None:
    """How many epochs the run will last (from max_epochs, or max_steps and the epoch length)."""
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
    if trainer.max_steps and trainer.max_steps > 0:
        per_epoch = trainer.lightning_module.optimizer_steps_per_epoch()
        if isinstance(per_epoch, int) and per_epoch > 0:
            by_steps = math.ceil(trainer.max_steps / per_epoch)
            epochs = min(epochs, by_steps) if epochs else by_steps
    return epochs


class EveryNEpochs:
    """Decides whether this validation is one to log: every `n` epochs, or about `auto_logs` per run."""

    def __init__(self, every_n_epochs: int | None, auto_logs: int) -> None:
        if every_n_epochs is not None and (not isinstance(every_n_epochs, int) or every_n_epochs < 1):
            raise UserError(f"every_n_epochs must be a positive integer or null (automatic), got {every_n_epochs!r}.")
        self.every_n_epochs = every_n_epochs
        self.auto_logs = auto_logs

    def interval(self, trainer: L.Trainer) -> int:
        if self.every_n_epochs:
            return self.every_n_epochs
        epochs = expected_epochs(trainer)
        return max(1, math.ceil(epochs / self.auto_logs)) if epochs else 1

    def due(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking or not active(trainer):
            return False
        epoch = trainer.current_epoch + 1
        return epoch % self.interval(trainer) == 0 or epoch == trainer.max_epochs


# --- callbacks ------------------------------------------------------------------------------------
class ConfusionMatrixImage(L.Callback):
    """IMAGES tab: `confusion_matrix/val` (every few epochs) and `confusion_matrix/test`, each the
    counts beside the row-normalised matrix, with class names and colour bars."""

    AUTO_LOGS = 5  # a 10-class figure takes about 0.5 s to draw on a laptop CPU

    def __init__(self, every_n_epochs: int | None = None, val: bool = True, test: bool = True) -> None:
        self.schedule = EveryNEpochs(every_n_epochs, self.AUTO_LOGS)
        self.val, self.test = val, test

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.val and self.schedule.due(trainer):
            self._log(trainer, getattr(pl_module, "val_confusion_matrix", None), "val",
                      f"validation, epoch {trainer.current_epoch + 1}")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.test:
            self._log(trainer, getattr(pl_module, "test_confusion_matrix", None), "test", "test")

    @staticmethod
    def _log(trainer: L.Trainer, matrix: torch.Tensor | None, split: str, title: str) -> None:
        loggers = image_loggers(trainer)
        if matrix is None or not loggers:
            return

        names = class_names(trainer, len(matrix))
        image = to_rgb(confusion_matrix_figure(matrix, names, f"Confusion matrix, {title}"))
        for logger in loggers:
            log_image(logger, f"confusion_matrix/{split}", image, trainer.global_step)


class PerClassMetrics(L.Callback):
    """SCALARS: `val/precision/<class>`, `val/recall/<class>`, `val/f1/<class>` and the same under
    `test/`, read off the confusion matrix (the macro averages are `val/precision` etc.). Sent to
    every logger (CSV too), but not into the run's final metrics. MLflow gets them as
    `val/per_class/precision/<class>`: its file store keeps a metric per file, named by its path, so
    `val/precision` cannot also be a folder."""

    AUTO_LOGS = 100

    def __init__(self, every_n_epochs: int | None = None, val: bool = True, test: bool = True) -> None:
        self.schedule = EveryNEpochs(every_n_epochs, self.AUTO_LOGS)
        self.val, self.test = val, test

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.val and self.schedule.due(trainer):
            self._log(trainer, getattr(pl_module, "val_confusion_matrix", None), "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.test and active(trainer):
            self._log(trainer, getattr(pl_module, "test_confusion_matrix", None), "test")

    @staticmethod
    def _log(trainer: L.Trainer, matrix: torch.Tensor | None, split: str) -> None:
        if matrix is None or not trainer.loggers:
            return


        scores = per_class_metrics(matrix)
        names = [tag_name(n) for n in class_names(trainer, len(matrix))]
        for logger in trainer.loggers:
            folder = f"{split}/per_class" if isinstance(logger, MLFlowLogger) else split
            metrics: dict[str, float] = {"epoch": float(trainer.current_epoch)}  # as Lightning logs beside metrics
            metrics |= {
                f"{folder}/{score}/{name}": float(value)
                for score in ("precision", "recall", "f1")
                for name, value in zip(names, scores[score].tolist())
            }
            logger.log_metrics(metrics, step=trainer.global_step)
            logger.save()


class PredictionGrid(L.Callback):
    """IMAGES tab: `predictions/test`, the first `num_images` test images titled "true:pred", wrong
    ones in red with a red frame (image data sets only: input shape (C, H, W))."""

    def __init__(self, num_images: int = 50, ncols: int = 10) -> None:
        self.num_images, self.ncols = int(num_images), int(ncols)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = image_loggers(trainer)
        if not loggers or self.num_images < 1:
            return
        grid = prediction_grid(trainer, pl_module, self.num_images, self.ncols)
        if grid is None:
            return

        image = to_rgb(grid)
        for logger in loggers:
            log_image(logger, "predictions/test", image, trainer.global_step)


def prediction_grid(trainer: L.Trainer, pl_module: L.LightningModule, num_images: int = 50, ncols: int = 10):
    """The grid figure of the data module's first test images, or None for non-image data."""
    datamodule = trainer.datamodule
    split = getattr(datamodule, "test_split", None)
    if split is None or len(split) == 0:
        return None

    index = torch.arange(min(num_images, len(split)))
    show = getattr(datamodule, "display_inputs", None)  # images read from files on the per-sample path
    raw = show(split, index) if callable(show) else split.inputs[:num_images]
    if raw.ndim != 4:
        return None
    targets = split.targets[:num_images]
    predictions = predict_classes(pl_module, raw, getattr(datamodule, "transform", None), trainer)
    transform = getattr(datamodule, "transform", None)
    max_value = getattr(transform, "max_value", None) or (255.0 if raw.dtype == torch.uint8 else None)
    names = class_names(trainer, pl_module.num_classes)
    images = as_display_images(raw, max_value)
    return prediction_grid_figure(images, targets.tolist(), predictions.tolist(), names, ncols=ncols)


@torch.no_grad()
def predict_classes(pl_module: L.LightningModule, raw: torch.Tensor, transform, trainer: L.Trainer | None = None):
    """Predicted classes of raw inputs (the data module's transform applied, as its loaders do)."""
    was_training = pl_module.training
    pl_module.eval()
    try:
        x = transform(raw) if transform is not None else raw.float()
        x = x.to(pl_module.device)
        if trainer is not None:
            x = trainer.precision_plugin.convert_input(x)
            with trainer.precision_plugin.forward_context():
                scores = pl_module.class_scores(pl_module(x))
        else:
            scores = pl_module.class_scores(pl_module(x))
    finally:
        pl_module.train(was_training)
    return scores.argmax(1).cpu()


class LearningCurvesLayout(L.Callback):
    """CUSTOM SCALARS tab: chart "loss" (train/loss with val/loss) and chart "accuracy" (train/acc
    with val/acc), so training and validation curves compare in one chart each."""

    LAYOUT = {
        "learning curves": {
            "loss": ["Multiline", [r"^train/loss$", r"^val/loss$"]],
            "accuracy": ["Multiline", [r"^train/acc$", r"^val/acc$"]],
        }
    }

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for writer in summary_writers(trainer):
            writer.add_custom_scalars(self.LAYOUT)


def takes_images(loggers: list[Any]) -> list[Any]:
    """The loggers that take images: TensorBoard (a SummaryWriter's IMAGES), MLflow (artifacts), W&B (media)."""
    return [logger for logger in loggers if isinstance(logger, (MLFlowLogger, WandbLogger))
            or callable(getattr(type(getattr(logger, "experiment", None)), "add_image", None))]


def log_image(logger: Any, tag: str, image: Any, step: int) -> None:
    """An (H, W, 3) uint8 image: TensorBoard tag `tag`, MLflow artifact `<tag>_step<step>.png`, W&B media `tag`."""
    if isinstance(logger, MLFlowLogger):
        logger.experiment.log_image(logger.run_id, image, artifact_file=f"{tag}_step{step:06d}.png")
    elif isinstance(logger, WandbLogger):
        logger.log_image(key=tag, images=[image], step=step)
    else:
        logger.experiment.add_image(tag, image, step, dataformats="HWC")

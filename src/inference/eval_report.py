"""The report folder of `python -m src.eval` besides its metrics.json: confusion matrix (figure and
CSV), per-class scores, a grid of test predictions, learning curves, every test sample's prediction and
the top losses, calibration and the reliability diagram (the files are listed in src/eval.py)."""

from __future__ import annotations

import csv
from pathlib import Path

from src.callbacks.confusion_matrix import class_names, confusion_table_rows
from src.callbacks.tensorboard_reports import prediction_grid
from src.figures.plots import confusion_matrix_figure, learning_curves_figure, save_png, to_rgb
from src.figures.reliability import reliability_figure
from src.inference.test_predictions import test_probabilities, top_losses_figure
from src.models.calibration import calibration_metrics, reliability_bins
from src.models.metrics import per_class_metrics
from src.runs.history import read_history
from src.runs.predictions import write_predictions_csv


def write_report(out_dir: Path, trainer, model, run_dir: Path) -> None:
    """The report files besides metrics.json (see the module docstring)."""
    matrix = model.test_confusion_matrix
    names = class_names(trainer, len(matrix))
    save_png(confusion_matrix_figure(matrix, names, "Confusion matrix, test"), out_dir / "confusion_matrix.png")
    write_csv(out_dir / "confusion_matrix.csv", confusion_table_rows(matrix, names))
    scores = per_class_metrics(matrix)
    rows = [["class", "precision", "recall", "f1", "support"]]
    for i, name in enumerate(names):
        rows.append([name, *(f"{float(scores[k][i]):.6f}" for k in ("precision", "recall", "f1")),
                     str(int(scores["support"][i]))])
    write_csv(out_dir / "per_class.csv", rows)

    grid = prediction_grid(trainer, model)
    if grid is not None:
        save_png(grid, out_dir / "predictions.png")
    else:
        print("predictions.png skipped: the data set does not hold images.", flush=True)

    history = read_history(run_dir)
    if history:
        title = f"Learning curves of {run_dir.name}"
        save_png(learning_curves_figure(history.curves, history.x_label, title), out_dir / "learning_curves.png")
    else:
        print(f"learning_curves.png skipped: no TensorBoard event files or CSV logs with train/val curves in "
              f"{run_dir}.", flush=True)


def write_test_predictions(out_dir: Path, trainer, model, datamodule, probabilities=None, cam: bool = False,
                           source: str = ""):
    """predictions.csv and top_losses.png (see the module docstring and src/inference/test_predictions.py)
    from the test loop's `probabilities` (predicted again where it scored part of the split); with `cam`,
    top_losses_cam.png: where the model looks in those images (src/inspection/top_losses_cam.py)."""
    if probabilities is None:
        probabilities = test_probabilities(trainer, model, datamodule)
    names = class_names(trainer, probabilities.shape[1])
    write_predictions_csv(out_dir / "predictions.csv", datamodule.test_split, probabilities, names)
    grid = top_losses_figure(datamodule, probabilities, names)
    if grid is not None:
        save_png(grid, out_dir / "top_losses.png")
    else:
        print("top_losses.png skipped: no test image is predicted wrong (or the data set does not hold images).",
              flush=True)
    if cam:  # the class activation maps (src/inspection/, an optional feature) load only for cam=true
        from src.inspection.top_losses_cam import top_losses_cam_figure
        figure = top_losses_cam_figure(datamodule, model, probabilities, names, source)
        if figure is not None:
            save_png(figure, out_dir / "top_losses_cam.png")
    return probabilities


def write_calibration(out_dir: Path, trainer, probabilities, targets) -> dict[str, float]:
    """`test/ece`, `test/nll`, `test/brier` (src/models/calibration.py) and reliability_diagram.png, also
    logged to TensorBoard when the command has a TensorBoard logger."""
    scores = calibration_metrics(probabilities, targets)
    figure = reliability_figure(reliability_bins(probabilities, targets), "Reliability diagram, test", scores)
    save_png(figure, out_dir / "reliability_diagram.png")
    metrics = {f"test/{name}": value for name, value in scores.items()}
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image("test/reliability_diagram", to_rgb(figure), trainer.global_step, dataformats="HWC")
    return metrics


def write_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)

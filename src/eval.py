"""`python -m src.eval ckpt_path=...`: evaluate a checkpoint on its data set's test split and write a
report folder. `ckpt_path=model.onnx` (or `model.int8.onnx`) evaluates a file src.export wrote: its
outputs, on the data of the checkpoint it was exported from.

Model and data are rebuilt from the configuration stored in the checkpoint. The report goes next to
the run the checkpoint belongs to, `<run_dir>/eval/<date>_<time>_<microseconds>/` (the checkpoint
lives in `<run_dir>/checkpoints/`), or under `logs/eval/runs/` for a checkpoint kept elsewhere:

    metrics.json            test metrics (with test/ece, test/nll, test/brier), the checkpoint's path and its
                            temperature when src.calibrate fitted one
    confusion_matrix.png    counts and row-normalised matrix, class names, colour bars
    confusion_matrix.csv    rows `true_<class>`, columns `pred_<class>`
    per_class.csv           class, precision, recall, f1, support
    predictions.png         the first 50 test images titled "true:pred", wrong ones in red (image data)
    predictions.csv         one row per test sample: sample (file, row or position), true and predicted
                            class, loss, every class's probability
    top_losses.png          the most confidently wrong test images, titled "true:pred:probability" (image data)
    top_losses_cam.png      with cam=true: where the model looks in those images (Grad-CAM, integrated gradients)
    reliability_diagram.png accuracy against confidence in 15 bins (src/models/calibration.py)
    learning_curves.png     train/validation loss and accuracy from the run's TensorBoard or CSV logs
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

import src.config.resolvers  # noqa: F401
from src.config.choices import check_command_line
from src.errors import UserError, exits_on_user_error, explain

log = logging.getLogger(__name__)


def report_root(default: str, *, _root_: Any) -> str:
    """`${eval_dir:DEFAULT}`: `<run_dir>/eval` for an existing checkpoint in `<run_dir>/checkpoints/`,
    else DEFAULT (Hydra resolves this for its run folder before the job starts)."""
    from src.runs.checkpoint import run_dir_of  # (a resolver of Hydra's run folder: see evaluate's imports)

    if OmegaConf.is_missing(_root_, "ckpt_path") or not _root_.get("ckpt_path"):
        return default
    path = Path(str(_root_.ckpt_path)).expanduser()
    run_dir = run_dir_of(path) if path.is_file() else None
    return str(run_dir / "eval") if run_dir is not None else default


if not OmegaConf.has_resolver("eval_dir"):
    OmegaConf.register_new_resolver("eval_dir", report_root)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    # Imported here: a command Hydra refuses (a misspelt override, --help) ends before torch and Lightning load.
    import lightning as L

    from src import builders
    from src.callbacks.confusion_matrix import ConfusionMatrixTable
    from src.callbacks.tensorboard_reports import ConfusionMatrixImage, PerClassMetrics, PredictionGrid
    from src.callbacks.test_predictions import TestProbabilities
    from src.inference.eval_report import write_calibration, write_report, write_test_predictions
    from src.inference.model import check_data_fits, rebuild_module
    from src.runs.checkpoint import load_checkpoint, run_dir_of, training_paths
    from src.runs.console import one_line, quiet_library_noise, scalar_metrics
    from src.runs.record import RunRecord

    quiet_library_noise()
    if str(cfg.ckpt_path).lower().endswith(".onnx"):  # an exported (or int8) file: its outputs, its checkpoint's data
        from src.inference.onnx_model import onnx_module

        path, ckpt, model = onnx_module(cfg.ckpt_path)
    else:
        path, ckpt = load_checkpoint(cfg.ckpt_path)
        model = rebuild_module(path, ckpt)
    run_config = ckpt["run_config"]
    out_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, verbose=False)
    data_cfg = OmegaConf.merge(training_paths(run_config), cfg.get("data") or {})
    try:
        datamodule = builders.build_datamodule(data_cfg)
    except Exception as exc:  # a data override that does not fit the stored data config
        if explain(exc) is not None:
            raise
        cause = exc.__cause__ or exc
        raise UserError(
            f"the data module could not be rebuilt from {path} with your data overrides ({cause}); "
            "pass only data.batch_size-like overrides to src.eval."
        ) from None
    check_data_fits(model, datamodule, path)
    tested = TestProbabilities()
    if getattr(model, "task", None) == "multilabel":  # several labels per sample: its own report files
        from src.inference.multilabel import check_label_names, write_multilabel_report
        datamodule.prepare_data()
        datamodule.setup("test")
        check_label_names(datamodule, ckpt, path)
        trainer = builders.build_trainer(cfg.trainer, [tested], builders.build_all(cfg.get("logger")))
        trainer.test(model, datamodule=datamodule)
        metrics = scalar_metrics(trainer.callback_metrics)
        metrics.update(write_multilabel_report(out_dir, trainer, model, datamodule, tested.probabilities))
        RunRecord(metrics, ckpt_path=str(path.resolve()), temperature=ckpt.get("temperature")).write(out_dir)
        print(one_line(metrics) + f"   (checkpoint: {path}; report: {out_dir})", flush=True)
        return metrics
    callbacks = [ConfusionMatrixTable(), ConfusionMatrixImage(), PerClassMetrics(), PredictionGrid(), tested]
    loggers = builders.build_all(cfg.get("logger"))
    trainer = builders.build_trainer(cfg.trainer, callbacks, loggers)
    trainer.test(model, datamodule=datamodule)

    metrics = scalar_metrics(trainer.callback_metrics)
    write_report(out_dir, trainer, model, run_dir_of(path.resolve()) or path.resolve().parent)
    probabilities = write_test_predictions(out_dir, trainer, model, datamodule, tested.probabilities,
                                           cam=bool(cfg.get("cam")), source=str(path))
    metrics.update(write_calibration(out_dir, trainer, probabilities, datamodule.test_split.targets))
    RunRecord(metrics, ckpt_path=str(path.resolve()), temperature=ckpt.get("temperature")).write(out_dir)
    print(one_line(metrics) + f"   (checkpoint: {path}; report: {out_dir})", flush=True)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@exits_on_user_error
def main(cfg: DictConfig) -> float | None:
    return evaluate(cfg).get("test/acc")


if __name__ == "__main__":
    exits_on_user_error(check_command_line)(sys.argv[1:])
    main()

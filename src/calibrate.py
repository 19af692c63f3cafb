"""`python -m src.calibrate ckpt_path=...`: temperature scaling of a trained checkpoint.

One temperature T is fitted on the run's validation split (the T minimising the negative log-likelihood
of logits / T), and written with the checkpoint's weights, configuration and class names into a new
checkpoint beside the old one (`<name>.calibrated.ckpt`, or `output=FILE`). `src.eval`, `src.predict`
and `src.export` apply the stored T; the predicted classes (the argmax) stay exactly the same. The
expected calibration error (ECE, 15 bins), NLL and Brier score on the test split are printed before
and after.

    python -m src.calibrate ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import src.config.resolvers  # noqa: F401
from src.config.choices import check_command_line
from src.errors import UserError, exits_on_user_error, require

log = logging.getLogger(__name__)


def calibrate(cfg: DictConfig) -> dict[str, float]:
    import lightning as L
    import torch

    from src import builders
    from src.inference.model import TEMPERATURE_KEY, check_data_fits, rebuild_module
    from src.models.calibration import calibration_metrics, fit_temperature
    from src.runs.checkpoint import load_checkpoint, training_paths
    from src.runs.checkpoint_writer import AtomicCheckpointIO

    path, ckpt = load_checkpoint(cfg.ckpt_path)
    output = Path(str(cfg.output)) if cfg.get("output") else path.with_name(f"{path.stem}.calibrated.ckpt")
    require(output.resolve() != path.resolve(), f"output={output} is the checkpoint itself; name another file.")
    L.seed_everything(cfg.seed, verbose=False)
    module = rebuild_module(path, ckpt, calibrated=False)  # T is fitted on the net's own logits
    datamodule = builders.build_datamodule(OmegaConf.merge(training_paths(ckpt["run_config"]), cfg.get("data") or {}))
    check_data_fits(module, datamodule, path)
    datamodule.prepare_data()
    datamodule.setup("fit")
    check_validation_split(datamodule, path)
    if getattr(module, "task", None) == "multilabel":  # several labels per sample: one temperature per label
        from src.inference.multilabel import calibrate_labels, check_label_names
        check_label_names(datamodule, ckpt, path)
        return calibrate_labels(module, datamodule, ckpt, path, output)

    val_logits, val_targets = logits_of(module, datamodule.val_dataloader())
    test_logits, test_targets = logits_of(module, datamodule.test_dataloader())
    temperature = fit_temperature(val_logits, val_targets)
    before = calibration_metrics(test_logits.softmax(1), test_targets)
    after = calibration_metrics((test_logits / temperature).softmax(1), test_targets)
    same = torch.equal(test_logits.argmax(1), (test_logits / temperature).argmax(1))
    calibrated = {**ckpt, TEMPERATURE_KEY: temperature,
                  "calibration": {"fitted_on": "val", "source": str(path.resolve()),
                                  "test_before": before, "test_after": after}}
    AtomicCheckpointIO().save_checkpoint(calibrated, output)
    print(f"temperature T = {temperature:.4f} (fitted on {len(val_targets)} validation samples)", flush=True)
    for name in ("ece", "nll", "brier"):
        print(f"test {name:>5}: {before[name]:.4f} -> {after[name]:.4f}", flush=True)
    print(f"test accuracy unchanged: {same} ({float((test_logits.argmax(1) == test_targets).float().mean()):.4f}); "
          f"calibrated checkpoint: {output}", flush=True)
    return {"temperature": temperature, **{f"test/{k}_before": v for k, v in before.items()},
            **{f"test/{k}_after": v for k, v in after.items()}}


def check_validation_split(datamodule, path: Path) -> None:
    """A temperature fitted on the test split would flatter the test figures: the run needs its own
    validation split."""
    val, test = getattr(datamodule, "val_split", None), getattr(datamodule, "test_split", None)
    require(val is not None and test is not None,
            f"the data of {path} has no validation split to fit the temperature on; calibrate a run whose data "
            "carves one (data.val_fraction).")
    same_as_test = len(val) == len(test) and val.inputs.data_ptr() == test.inputs.data_ptr()
    require(not same_as_test,
            f"the run of {path} validates on its test split, so fitting the temperature there would flatter the "
            "test figures; train with a separate validation split (e.g. data.validate_on_test=false) and calibrate "
            "that checkpoint.")


def logits_of(module, loader):
    """(logits (N, C), targets (N,)) over a loader's batches; a binary model's one logit z becomes (0, z),
    whose softmax is (1 - sigmoid(z), sigmoid(z))."""
    import torch

    logits, targets = [], []
    with torch.no_grad():
        for x, y in loader:
            out = module(x.to(module.device)).float().cpu()
            logits.append(torch.cat([torch.zeros_like(out), out], 1) if out.shape[1] == 1 else out)
            targets.append(y.long().cpu().view(-1))
    if not logits:
        raise UserError("the validation or test split is empty; calibrate a run with data in both.")
    return torch.cat(logits), torch.cat(targets)


@hydra.main(version_base="1.3", config_path="../conf", config_name="calibrate")
@exits_on_user_error
def main(cfg: DictConfig) -> float | None:
    temperature = calibrate(cfg)["temperature"]
    return temperature if isinstance(temperature, float) else None  # (several labels: one per label)


if __name__ == "__main__":
    exits_on_user_error(check_command_line)(sys.argv[1:])
    main()

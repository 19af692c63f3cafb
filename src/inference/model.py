"""The LightningModule of a checkpoint that `src.train` wrote, rebuilt without its training run.

A checkpoint holds the resolved run configuration (`run_config`: data and model configs), the
LightningModule's hyper-parameters and weights; this rebuilds the module from those alone. It is the
one loader of `src.eval`, `src.predict`, `src.export` and the visuals. Loading leaves the caller's
random numbers alone: unlike Lightning's `load_from_checkpoint` it does not run the module's
`on_load_checkpoint` hook, which restores what resuming a run needs (the run's random-number state
among it), and the throwaway initial weights are drawn from a forked generator.

A checkpoint written by `src.calibrate` also holds a fitted `temperature`: the rebuilt module's net is
then `TemperatureScaled` (logits divided by T), so eval, predict and export give calibrated
probabilities with the same predicted classes.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class

from src.errors import UserError, require
from src.models.nets.temperature import TemperatureScaled
from src.models.nets.weights import without_weight_loading

TEMPERATURE_KEY = "temperature"  # the checkpoint entry src.calibrate writes


def rebuild_module(path: Path, ckpt: dict[str, Any], calibrated: bool = True):
    """The LightningModule of a checkpoint, weights loaded, in eval mode, on the CPU; with the stored
    temperature applied to its net unless `calibrated=False`."""
    target = ckpt["run_config"].get("model", {}).get("_target_")
    try:
        module_cls = get_class(target)
    except (ImportError, ValueError) as exc:  # Hydra: no such module or name / not a class
        raise UserError(
            f"{path} names the model class {target!r}, which this code does not have; "
            "evaluate it with the code version that trained it."
        ) from exc

    # The checkpoint holds the trained weights: no pretrained download, no weights_file read.
    hparams = without_weight_loading(ckpt.get("hyper_parameters") or {})
    try:
        inspect.signature(module_cls).bind(**hparams)
    except TypeError as exc:  # a stored argument this code's constructor does not take, or one it lacks
        raise UserError(
            f"the hyper-parameters stored in {path} do not fit {module_cls.__name__} ({exc}); evaluate it with "
            "the code version that trained it."
        ) from exc

    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten below: draw them aside
        module = module_cls(**hparams)
    try:
        module.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        detail = details[0].rstrip(".") if details else type(exc).__name__
        raise UserError(
            f"the weights in {path} do not fit the {type(module.net).__name__} rebuilt from its stored "
            f"configuration ({detail}); the file was changed or comes from other model code: pass a "
            "checkpoint that src.train wrote with this code."
        ) from exc
    temperature = ckpt.get(TEMPERATURE_KEY)
    if calibrated and temperature is not None:
        scale = [float(t) for t in temperature] if isinstance(temperature, list) else float(temperature)  # per label
        module.net = TemperatureScaled(module.net, scale)  # after the weights: their keys stay the net's
    return module.eval()


def check_data_fits(module, datamodule, path: Path) -> None:
    """The data (with the user's overrides) must give the inputs and classes the model was built for."""
    model_shape = list((module.hparams.get("net") or {}).get("input_shape") or [])
    data_shape, data_classes = list(datamodule.input_shape), int(datamodule.num_classes)
    require(
        (not model_shape or model_shape == data_shape) and data_classes == int(module.num_classes),
        f"the model in {path} takes inputs of shape {model_shape} in {module.num_classes} classes, but the data "
        f"({getattr(datamodule, 'name', 'data')}) gives {data_shape} in {data_classes} classes; evaluate a "
        "checkpoint on the data set it was trained on (drop the data overrides).",
    )

"""A model folder written by `python -m src.export format=hub`, read back as the checkpoint it came from.

The folder holds `model.safetensors` (the net's weights, under the net's own names, as timm and the Hub
expect them) and `config.json`, whose `lightning_hydra_classify` entry keeps what `src.eval` and
`src.predict` rebuild a checkpoint's module and preprocessing from: the run configuration, the module's
hyper-parameters, the data module's stored state (class names, normalisation, a table's encoding), a
calibration temperature (a list: one per label) and the module's own buffers (a multi-label model's
per-label thresholds, `module_buffers`). `load_checkpoint(DIR)` (src/runs/checkpoint.py) returns that checkpoint dict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from src.errors import UserError, require

WEIGHTS, CONFIG = "model.safetensors", "config.json"
PROJECT_KEY = "lightning_hydra_classify"  # the entry of config.json that holds the run's records
NET_PREFIX = "net."                       # the LightningModule's name of its net
MODULE_BUFFERS = ("thresholds",)  # module state besides the net, kept in config.json (multi-label thresholds)


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG).is_file()


def read_model_folder(path: Path) -> tuple[Path, dict[str, Any]]:
    """(folder, checkpoint dict) of a model folder: the weights under the module's names, the stored records."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    require((path / WEIGHTS).is_file(), f"{path} has a {CONFIG} but no {WEIGHTS}; pass a folder that "
                                        "python -m src.export format=hub wrote.")
    try:
        config = json.loads((path / CONFIG).read_text())
        weights = load_file(str(path / WEIGHTS), device="cpu")
    except (OSError, ValueError, SafetensorError) as exc:
        raise UserError(f"the model folder {path} cannot be read ({exc}); export the checkpoint again.") from None
    stored = config.get(PROJECT_KEY) if isinstance(config, dict) else None
    require(isinstance(stored, dict) and "run_config" in stored,
            f"{path / CONFIG} was not written by python -m src.export format=hub (it has no {PROJECT_KEY} entry); "
            "pass a folder that it wrote, or a .ckpt file.")
    ckpt: dict[str, Any] = {
        "run_config": stored["run_config"],
        "run_composition": stored.get("run_composition") or {},
        "hyper_parameters": stored.get("hyper_parameters") or {},
        "state_dict": {NET_PREFIX + name: tensor for name, tensor in weights.items()},
        **(stored.get("data_state") or {}),
    }
    import torch

    for name, values in (stored.get("module_buffers") or {}).items():
        require(name in MODULE_BUFFERS, f"{path / CONFIG} holds module state {name!r} that this code does not "
                                        "read; load the folder with the code version that wrote it.")
        ckpt["state_dict"][name] = torch.tensor(values, dtype=torch.float32)
    temperature = stored.get("temperature")
    if temperature is not None:  # one per label after src.calibrate of a multi-label model
        ckpt["temperature"] = [float(t) for t in temperature] if isinstance(temperature, list) else float(temperature)
    return path, ckpt

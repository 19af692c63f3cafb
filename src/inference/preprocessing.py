"""Preprocess new inputs exactly as training did, from the checkpoint file alone.

The data module's `state_dict()` (class names and the fitted input transform, e.g. `Normalize`
mean/std/max_value; for a table, its fitted encoding) is stored by Lightning in every checkpoint
under the data module's class name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class

from src.builders import build_datamodule
from src.data.batch_transforms import Normalize

log = logging.getLogger(__name__)


@dataclass
class Preprocessing:
    """What `src.predict` needs to turn image files into the model's input batch."""

    data_name: str
    input_shape: tuple[int, ...]
    class_names: list[str]
    transform: dict[str, Any] | None  # Normalize(**transform); None: raw pixel values
    table: dict[str, Any] | None = None  # a table's fitted encoding (TableEncoder.state() and the target's name)

    @property
    def max_value(self) -> float:
        return float((self.transform or {}).get("max_value", 255.0))

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def is_table(self) -> bool:
        return self.table is not None

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transform:
            return x.float()

        return Normalize(**self.transform)(x)


def preprocessing_of(ckpt: dict[str, Any], path: Path) -> Preprocessing:
    """Input shape, class names and normalisation from the checkpoint (the data module's stored
    state); a checkpoint that holds no such state has them recomputed from the data set."""
    data_cfg = dict(ckpt["run_config"].get("data") or {})
    net_cfg = (ckpt.get("hyper_parameters") or {}).get("net") or {}
    input_shape = tuple(int(d) for d in (net_cfg.get("input_shape") or data_cfg.get("input_shape") or ()))
    name = str(data_cfg.get("dataset") or data_cfg.get("name") or "data")  # data=hf: data.name is a configuration
    try:
        state = ckpt.get(get_class(data_cfg["_target_"]).__qualname__)
    except (KeyError, ImportError, ValueError):  # no `_target_`, or a data class that cannot be imported
        state = None
    if not isinstance(state, dict) or "class_names" not in state:
        log.warning("%s holds no preprocessing state: recomputing it from the %s data set.",
                    path, name)
        state = _state_from_data(data_cfg)
    num_classes = int(data_cfg.get("num_classes") or len(state.get("class_names") or []))
    names = [str(n) for n in state.get("class_names") or range(num_classes)]
    return Preprocessing(name, input_shape, names, state.get("transform"), state.get("table"))


def _state_from_data(data_cfg: dict[str, Any]) -> dict[str, Any]:
    datamodule = build_datamodule({**data_cfg, "device": "cpu"})  # statistics only: no accelerator needed
    datamodule.prepare_data()
    datamodule.setup("predict")
    return datamodule.state_dict()

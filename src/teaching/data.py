"""Real images for the visuals, read through the project's own data modules (`data=` picks one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from src.builders import build_datamodule
from src.errors import require


@dataclass
class SampleImage:
    """One test image as a 2-D float tensor in [0, 1] (colour images averaged to grey)."""

    pixels: torch.Tensor
    label: str
    data_name: str
    index: int

    @property
    def caption(self) -> str:
        side = "x".join(str(s) for s in self.pixels.shape)
        return f"{self.data_name} test image {self.index} ({self.label}, {side} px)"


def load_datamodule(data_cfg: Any):
    """The data config's DataModule, set up on the CPU (its splits held as tensors)."""
    datamodule = build_datamodule(data_cfg)
    datamodule.device = "cpu"
    datamodule.prepare_data()
    datamodule.setup("test")
    return datamodule


def max_pixel_value(datamodule) -> float:
    """The raw pixel range: 16 for scikit-learn's digits, 255 for the image files."""
    return float(getattr(datamodule, "MAX_VALUE", 255.0))


def sample_image(data_cfg: Any, index: int = 0) -> SampleImage:
    """Test image `index` of the data set `data_cfg` describes, scaled to [0, 1]."""
    shape = list(data_cfg.get("input_shape") or [])
    name = str(data_cfg.get("name", "data"))
    require(
        len(shape) == 3,
        f"this topic needs an image data set, but data={name} gives inputs of shape {shape}; "
        "use data=digits or data=fashion_mnist.",
    )
    datamodule = load_datamodule(data_cfg)
    test = datamodule.test_split
    require(
        isinstance(index, int) and 0 <= index < len(test),
        f"index={index!r} is outside the {name} test split (0 to {len(test) - 1}); pass index=0.",
    )
    image = test.inputs[index].float() / max_pixel_value(datamodule)
    label = datamodule.class_names[int(test.targets[index])]
    return SampleImage(image.mean(0), str(label), name, index)

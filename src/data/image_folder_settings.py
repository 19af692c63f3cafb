"""The settings of `data=image_folder` that are read before any image is: the image size, the channels,
the normalisation (given, fitted, or the pretrained weights' values from timm), the values the config
takes from the folder (`${image_folder:KEY}`), and the machine's memory for `data.loader=auto`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.data.image_folder_listing import class_names_of
from src.errors import UserError, require


def image_size_of(image_size: Any, pretrained_model: str | None) -> tuple[int, int]:
    """(height, width) from `data.image_size`: an int, [height, width], or "model" (the pretrained size)."""
    if image_size == "model":
        require(bool(pretrained_model), "data.image_size=model takes the input size of a timm model's pretrained "
                                        "weights, but the model is not model=timm; give data.image_size=SIZE.")
        from src.timm_pretrained import pretrained_cfg  # model=timm only: an optional feature (docs/development.md)
        _, height, width = pretrained_cfg(str(pretrained_model))["input_size"]
        return int(height), int(width)
    sizes = [image_size, image_size] if isinstance(image_size, int) and not isinstance(image_size, bool) \
        else list(image_size) if isinstance(image_size, Sequence) and not isinstance(image_size, str) else []
    require(
        len(sizes) == 2 and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes),
        f"data.image_size must be a positive integer, [height, width] or model, got {image_size!r}.",
    )
    return int(sizes[0]), int(sizes[1])


def check_channels(channels: Any) -> int:
    require(channels in (1, 3) and not isinstance(channels, bool),
            f"data.channels must be 1 (grey) or 3 (RGB), got {channels!r}.")
    return int(channels)


def config_value(key: str, data: Any) -> Any:
    """`${image_folder:KEY}` in conf/data/image_folder.yaml: what the folder and the settings imply (with
    data.labels_file, images with several labels: src/data/multilabel.py)."""
    if key in ("data_module", "task_model", "num_classes") and data.get("labels_file"):
        from src.data.multilabel import image_folder_value
        return image_folder_value(key, data)
    if key in ("data_module", "task_model"):
        return {"data_module": "src.data.image_folder.ImageFolderDataModule",
                "task_model": "src.models.classifier.ClassificationModule"}[key]
    if key == "num_classes":
        return len(class_names_of(data.root))
    if key == "input_shape":
        return [check_channels(data.channels), *image_size_of(data.image_size, data.get("pretrained_model"))]
    if key == "name":
        return Path(str(data.root)).expanduser().resolve().name or "images"
    raise UserError(f"${{image_folder:{key}}} is unknown; use num_classes, input_shape or name.")


def memory_bytes() -> int | None:
    """The machine's physical memory, where the platform says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def normalisation_of(value: Any, key: str, pretrained_model: str | None, channels: int) -> list[float] | None:
    """`data.mean` / `data.std`: a list (one value per channel), null (fitted), or "model" (timm's)."""
    if value is None:
        return None
    if value == "model":
        require(bool(pretrained_model), f"data.{key}=model takes the normalisation of a timm model's pretrained "
                                        "weights, but the model is not model=timm; give the values or null.")
        from src.timm_pretrained import pretrained_cfg  # model=timm only
        values = [float(v) for v in pretrained_cfg(str(pretrained_model))[key]]
        return values if channels == len(values) else [sum(values) / len(values)] * channels
    require(isinstance(value, Sequence) and not isinstance(value, str) and len(value) == channels,
            f"data.{key} must be null, model, or one value per channel ({channels}), got {value!r}.")
    values = [float(v) for v in value]
    require(key != "std" or min(values) > 0, f"data.std values must be positive, got {values}.")
    return values

"""Use a checkpoint written by `src.train` without its training run: rebuild the model, and
preprocess new images exactly as training did, from the checkpoint file alone.

A checkpoint holds the resolved run configuration (`run_config`: data and model configs), the
LightningModule's hyper-parameters and weights, and the data module's `state_dict()` (class names
and the fitted input transform, e.g. `Normalize` mean/std/max_value), stored by Lightning under
the data module's class name.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from src.utils.errors import UserError, require

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def run_dir_of(ckpt_path: str | Path) -> Path | None:
    """The run folder of a checkpoint that `src.train` wrote into `<run_dir>/checkpoints/`."""
    path = Path(ckpt_path)
    return path.parent.parent if path.parent.name == "checkpoints" else None


# --- the model ----------------------------------------------------------------------------------
def rebuild_module(path: Path, ckpt: dict[str, Any]):
    """The LightningModule of a checkpoint, weights loaded, in eval mode, on the CPU."""
    from hydra.utils import get_class

    target = ckpt["run_config"].get("model", {}).get("_target_")
    try:
        module_cls = get_class(target)
    except Exception:
        raise UserError(
            f"{path} names the model class {target!r}, which this code does not have; "
            "evaluate it with the code version that trained it."
        ) from None
    module = module_cls(**(ckpt.get("hyper_parameters") or {}))
    try:
        module.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        detail = details[0].rstrip(".") if details else type(exc).__name__
        raise UserError(
            f"the weights in {path} do not fit the {type(module.net).__name__} rebuilt from its stored "
            f"configuration ({detail}); the file was changed or comes from other model code: pass a "
            "checkpoint that src.train wrote with this code."
        ) from None
    module.on_load_checkpoint(ckpt)
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


# --- preprocessing ------------------------------------------------------------------------------
@dataclass
class Preprocessing:
    """What `src.predict` needs to turn image files into the model's input batch."""

    data_name: str
    input_shape: tuple[int, ...]
    class_names: list[str]
    transform: dict[str, Any] | None  # Normalize(**transform); None: raw pixel values

    @property
    def max_value(self) -> float:
        return float((self.transform or {}).get("max_value", 255.0))

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transform:
            return x.float()
        from src.data.batch_transforms import Normalize

        return Normalize(**self.transform)(x)


def preprocessing_of(ckpt: dict[str, Any], path: Path) -> Preprocessing:
    """Input shape, class names and normalisation from the checkpoint (the data module's stored
    state); a checkpoint from before that state existed recomputes them from the data set."""
    from hydra.utils import get_class

    data_cfg = dict(ckpt["run_config"].get("data") or {})
    net_cfg = (ckpt.get("hyper_parameters") or {}).get("net") or {}
    input_shape = tuple(int(d) for d in (net_cfg.get("input_shape") or data_cfg.get("input_shape") or ()))
    name = str(data_cfg.get("name", "data"))
    try:
        state = ckpt.get(get_class(data_cfg["_target_"]).__qualname__)
    except Exception:
        state = None
    if not isinstance(state, dict) or "class_names" not in state:
        log.warning("%s holds no preprocessing state (older checkpoint): recomputing it from the %s data set.",
                    path, name)
        state = _state_from_data(data_cfg)
    num_classes = int(data_cfg.get("num_classes") or len(state.get("class_names") or []))
    names = [str(n) for n in state.get("class_names") or range(num_classes)]
    return Preprocessing(name, input_shape, names, state.get("transform"))


def _state_from_data(data_cfg: dict[str, Any]) -> dict[str, Any]:
    from src.utils.instantiate import build_datamodule

    datamodule = build_datamodule(data_cfg)
    datamodule.device = "cpu"
    datamodule.setup("predict")
    return datamodule.state_dict()


# --- image files --------------------------------------------------------------------------------
def find_images(spec: str) -> list[Path]:
    """The files that `inputs=` names: one image, every image in a folder, or a glob's matches."""
    require(bool(str(spec or "").strip()), "inputs is required: pass inputs=PATH (an image, a folder or a glob).")
    path = Path(str(spec)).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        require(
            bool(files),
            f"the folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}); pass a folder of images, "
            "one image, or a glob such as 'photos/*.png'.",
        )
        return files
    if path.is_file():
        return [path]
    if glob.has_magic(str(spec)):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        require(bool(files), f"no file matches {spec}; check the pattern (quote it so the shell does not expand it).")
        return files
    raise UserError(f"there is no image or folder at {spec}; pass inputs=PATH (an image, a folder or a glob).")


def load_image(path: Path, input_shape: Sequence[int], max_value: float = 255.0, invert: bool = False) -> torch.Tensor:
    """One image file as a (C, H, W) float tensor in the training data's pixel range [0, max_value]:
    converted to grey or RGB as C says, resized to H x W (area averaging when shrinking, bilinear
    when enlarging), optionally inverted (dark ink on white paper -> the digits' white on black)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    channels, height, width = (int(d) for d in input_shape)
    require(channels in (1, 3), f"the model takes images with {channels} channels; predict reads 1 (grey) or 3 (RGB).")
    try:
        with Image.open(path) as image:
            image.load()
            image = image.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{path} is not a readable image ({type(exc).__name__}); pass PNG, JPEG or other image files.")\
            from None
    if image.size != (width, height):
        shrink = image.width >= width and image.height >= height
        image = image.resize((width, height), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)
    if invert:
        pixels = 255.0 - pixels
    x = torch.from_numpy(pixels / 255.0 * float(max_value))
    return x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1).contiguous()

"""Image files for prediction: find them, read one as the model's input tensor, classify them."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from src.data.image_files import IMAGE_SUFFIXES, BadImageError, read_image
from src.errors import UserError, require
from src.inference.model import rebuild_module

__all__ = ["find_images", "load_image", "predict_images"]


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
    decoded, converted to grey or RGB as C says and resized to H x W by the rule `data=image_folder`
    trains with (`src.data.image_files.read_image`), optionally inverted (dark ink on white paper ->
    the digits' white on black)."""
    channels, height, width = (int(d) for d in input_shape)
    require(channels in (1, 3), f"the model takes images with {channels} channels; predict reads 1 (grey) or 3 (RGB).")
    try:
        pixels = read_image(path, channels, (height, width)).astype("float32")
    except BadImageError as exc:
        raise UserError(f"{path} is not a readable image ({exc.reason.split(':')[0]}); pass PNG, JPEG or other image "
                        "files.") from exc
    if invert:
        pixels = 255.0 - pixels
    return torch.from_numpy(pixels / 255.0 * float(max_value))


def predict_images(cfg: DictConfig, path: Path, ckpt: dict, prep: Any, batch_size: int, device: torch.device
                   ) -> list[dict[str, Any]]:
    """Each image that `cfg.inputs` names, classified by the checkpoint's model: file, class, probability."""
    files = find_images(str(cfg.inputs))
    model = rebuild_module(path, ckpt)
    model.to(device)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        raw = torch.stack([load_image(f, prep.input_shape, prep.max_value, bool(cfg.get("invert"))) for f in chunk])
        with torch.no_grad():
            probabilities = model.predict_proba(prep.normalize(raw).to(device)).cpu()
        confidence, predicted = probabilities.max(dim=1)
        for file, p, index in zip(chunk, confidence.tolist(), predicted.tolist()):
            rows.append({"file": str(file), "class": prep.class_names[index], "probability": p})
    return rows

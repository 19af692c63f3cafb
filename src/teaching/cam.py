"""Where a trained CNN looks: Grad-CAM and integrated-gradients heat maps over image files, for the
predicted class and (when a file sits in a folder named after a class) the true class.

    python -m src.visualize cam ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt inputs=photos/
"""

from __future__ import annotations

from pathlib import Path

import torch

from src.data.image_files import IMAGE_SUFFIXES
from src.errors import require
from src.figures.plots import as_display_images
from src.inference.images import find_images, load_image
from src.inference.model import rebuild_module
from src.inference.preprocessing import preprocessing_of
from src.inspection.cam import cam_figure, last_conv, maps_for
from src.runs.checkpoint import load_checkpoint

MAX_IMAGES = 16  # rows of one figure; more inputs make more figures


def cam_files(spec: str) -> list[Path]:
    """`inputs=`: an image, a glob, a folder of images, or a folder of class folders (files one level down)."""
    folder = Path(str(spec)).expanduser()
    if folder.is_dir() and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if p.is_file()):
        nested = sorted(p for d in sorted(folder.iterdir()) if d.is_dir() for p in d.iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if nested:
            return nested
    return find_images(str(spec))


def render(cfg, output) -> None:
    require(bool(cfg.get("ckpt_path")), "the cam topic needs ckpt_path=PATH, a CNN checkpoint written by src.train, "
                                        "and inputs=FILES_OR_FOLDER.")
    path, ckpt = load_checkpoint(str(cfg.ckpt_path))
    prep = preprocessing_of(ckpt, path)
    require(prep.is_image, f"the model in {path} was trained on the table {prep.data_name}; class activation maps need "
                           "a CNN trained on images.")
    module = rebuild_module(path, ckpt)
    files = cam_files(str(cfg.get("inputs") or ""))
    raw = torch.stack([load_image(f, prep.input_shape, prep.max_value) for f in files])
    x = prep.normalize(raw)
    last_conv(module.net, x, str(path))  # a net without convolutions stops here, in one sentence
    with torch.no_grad():
        predicted = module.predict_proba(x).argmax(1).tolist()
    names = prep.class_names
    true = [names.index(f.parent.name) if f.parent.name in names else None for f in files]
    shown = as_display_images(raw, prep.max_value)
    for start in range(0, len(files), MAX_IMAGES):
        part = slice(start, start + MAX_IMAGES)
        rows = maps_for(module.net, x[part], predicted[part], true[part], names, str(path))
        for row, file in zip(rows, files[part]):
            row["label"] = f"{file.name}\n{row['label']}"
        title = f"where {type(module.net).__name__} looks ({prep.data_name}): Grad-CAM and integrated gradients"
        output.figure(f"cam_{start // MAX_IMAGES:03d}", cam_figure(shown[part], rows, title))

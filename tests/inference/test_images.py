"""Image files for `src.predict`: which files `inputs=` names, and how one becomes a model input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from src.errors import UserError
from src.inference.images import find_images, load_image
from src.runs.checkpoint import run_dir_of


def test_inputs_name_one_image_a_folder_of_images_or_a_glob(tmp_path):
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").write_bytes(b"")
    assert [p.name for p in find_images(str(tmp_path))] == ["a.JPG", "b.png"]  # images only, not recursive
    assert [p.name for p in find_images(str(tmp_path / "b.png"))] == ["b.png"]
    assert [p.name for p in find_images(f"{tmp_path}/**/*.png")] == ["b.png", "c.png"]
    with pytest.raises(UserError, match="no file matches"):
        find_images(f"{tmp_path}/*.gif")


def test_an_image_is_converted_resized_and_scaled_to_the_training_pixel_range(tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(pixels, "L").resize((32, 32), Image.Resampling.NEAREST).convert("RGB").save(tmp_path / "big.png")
    x = load_image(tmp_path / "big.png", (1, 8, 8), max_value=16.0)  # RGB 32x32 -> grey 8x8, 0..16
    assert x.shape == (1, 8, 8)
    assert torch.allclose(x[0], torch.from_numpy(pixels.astype(np.float32)) / 255 * 16, atol=1e-5)
    inverted = load_image(tmp_path / "big.png", (1, 8, 8), max_value=16.0, invert=True)
    assert torch.allclose(inverted, 16 - x, atol=1e-5)
    assert load_image(tmp_path / "big.png", (3, 40, 40)).shape == (3, 40, 40)  # enlarged, RGB, 0..255
    with pytest.raises(UserError, match="predict reads 1 \\(grey\\) or 3 \\(RGB\\)"):
        load_image(tmp_path / "big.png", (2, 8, 8))


def test_the_run_folder_of_a_checkpoint(tmp_path):
    assert run_dir_of(tmp_path / "run" / "checkpoints" / "last.ckpt") == tmp_path / "run"
    assert run_dir_of(tmp_path / "model.ckpt") is None

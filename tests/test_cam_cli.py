"""Where the model looks: on images whose class is the quadrant holding a bright square, a briefly trained
LeNet's Grad-CAM peaks in that quadrant for at least 90 % of the test images; `python -m src.visualize cam`
draws the maps for files and class folders; `src.eval cam=true` adds the top losses' maps; a net without
convolutions and an unreadable file stop in one sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

QUADRANTS = ["q0_top_left", "q1_top_right", "q2_bottom_left", "q3_bottom_right"]
FAST = ["trainer=cpu", "logger=none", "callbacks=[model_checkpoint]", "data.image_size=32", "data.channels=1"]


def write_squares(root: Path, per_class: int, seed: int) -> None:
    """32x32 grey noise with one bright 8x8 square inside the quadrant that names the class folder."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(QUADRANTS):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            image = rng.integers(0, 90, (32, 32)).astype(np.uint8)
            top, left = 16 * (label // 2) + rng.integers(0, 9), 16 * (label % 2) + rng.integers(0, 9)
            image[top:top + 8, left:left + 8] = 255
            Image.fromarray(image, "L").save(root / name / f"{k:03d}.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A LeNet trained for a few epochs on the squares (train/ and test/, two test images under the wrong class):
    (run folder, its checkpoint, a folder of new images)."""
    from tests.conftest import ROOT, run_module

    tmp = tmp_path_factory.mktemp("cam")
    write_squares(tmp / "squares" / "train", 60, seed=0)
    write_squares(tmp / "squares" / "test", 5, seed=2)
    for k in range(2):  # two test images under the wrong quadrant: top losses for src.eval cam=true
        (tmp / "squares" / "test" / QUADRANTS[k] / "000.png").rename(tmp / "squares" / "test" / QUADRANTS[k + 2]
                                                                    / "moved.png")
    write_squares(tmp / "new", 10, seed=1)
    env = dict(__import__("os").environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0")
    result = run_module("src.train", ["data=image_folder", "data.root=squares", "model=lenet", *FAST,
                                      "trainer.max_epochs=8", f"hydra.run.dir={tmp / 'run'}"], tmp, env, 600)
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp / "run", tmp / "run" / "checkpoints" / "last.ckpt", tmp / "new"


def test_grad_cam_peaks_in_the_quadrant_of_the_square(trained):
    from src.inference.images import load_image
    from src.inference.model import rebuild_module
    from src.inference.preprocessing import preprocessing_of
    from src.inspection.cam import class_maps, peak_cells
    from src.runs.checkpoint import load_checkpoint
    from src.teaching.cam import cam_files

    _, ckpt_path, new = trained
    path, ckpt = load_checkpoint(str(ckpt_path))
    prep, module = preprocessing_of(ckpt, path), rebuild_module(path, ckpt)
    files = cam_files(str(new))
    x = prep.normalize(torch.stack([load_image(f, prep.input_shape, prep.max_value) for f in files]))
    true = np.array([QUADRANTS.index(f.parent.name) for f in files])
    maps = class_maps(module.net, x, true.tolist())
    share = float((peak_cells(maps["grad_cam"]) == true).mean())
    print(f"Grad-CAM peak in the square's quadrant: {share:.0%} of {len(files)} images")
    assert share >= 0.9


def test_visualize_cam_draws_files_and_class_folders(cli_in_process, trained):
    _, ckpt_path, new = trained
    result = cli_in_process("src.visualize", "cam", f"ckpt_path={ckpt_path}", f"inputs={new}", "out_dir=cams")
    assert result.returncode == 0, result.output
    figures = sorted((result.cwd / "cams").glob("cam_*.png"))
    assert len(figures) == 3 and all(f.stat().st_size > 0 for f in figures)  # 40 images, 16 per figure
    one_file = new / QUADRANTS[0] / "000.png"
    single = cli_in_process("src.visualize", "cam", f"ckpt_path={ckpt_path}", f"inputs={one_file}", "out_dir=one")
    assert single.returncode == 0 and (result.cwd / "one" / "cam_000.png").is_file()


def test_eval_cam_adds_the_top_losses_maps(cli_in_process, trained):
    _, ckpt_path, _ = trained
    result = cli_in_process("src.eval", f"ckpt_path={ckpt_path}", "cam=true", "trainer=cpu",
                            "hydra.run.dir=report")
    assert result.returncode == 0, result.output
    report = result.cwd / "report"
    assert (report / "top_losses_cam.png").stat().st_size > 0


def test_cam_bad_input_is_one_sentence(cli, cli_in_process, trained, tmp_path):
    _, ckpt_path, new = trained
    (tmp_path / "broken.png").write_bytes(b"not an image")
    broken = cli_in_process("src.visualize", "cam", f"ckpt_path={ckpt_path}", f"inputs={tmp_path / 'broken.png'}")
    assert broken.returncode == 2
    assert "broken.png is not a readable image" in broken.stderr
    mlp = cli("src.train", "data=image_folder", f"data.root={new}", "model=mlp", *FAST, "trainer.max_epochs=1",
              "hydra.run.dir=mlp")
    assert mlp.returncode == 0, mlp.output
    refused = cli_in_process("src.visualize", "cam", f"ckpt_path={mlp.cwd / 'mlp/checkpoints/last.ckpt'}",
                             f"inputs={new}")
    assert refused.returncode == 2
    assert [line for line in refused.stderr.splitlines() if line.startswith("error:")] == [
        f"error: the model in {mlp.cwd / 'mlp/checkpoints/last.ckpt'} is a MLP with no convolution layer; class "
        "activation maps need a CNN (e.g. model=lenet, resnet18, vgg11, notes0_cnn or a timm CNN)."]

"""`python -m src.visualize <topic>`: every topic writes readable, non-blank PNGs (two topics run as
subprocesses the way a user types them, the others in process), the run's TensorBoard gets the
images, bad input is one sentence; plus the computing parts (kernels, derivatives, gradient norms)
and the GradientNormLogger callback in both training modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def check_png(path: Path, min_width: int = 300, min_height: int = 200) -> None:
    """The file is a PNG of a sensible size whose pixels are not all the same (not blank)."""
    assert path.is_file(), path
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert width >= min_width and height >= min_height, (path, image.size)
    assert pixels.std() > 5, path  # drawn content, not a blank canvas


def compose_in(folder: Path, config_name: str, overrides: list[str]):
    """The resolved config of `python -m src.<config_name> OVERRIDES` run in `folder` (as conftest's compose)."""
    from src.config.compose import compose_run_config

    return compose_run_config([*overrides, f"paths.root_dir={folder}"], folder / "run", cwd=folder,
                              config_name=config_name)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two short training runs in process: softmax regression on iris' two features of notes 0, and notes
    0's CNN on the 8x8 digits (with its TensorBoard folder). {name: (run folder, last.ckpt)}."""
    from hydra.core.global_hydra import GlobalHydra

    from src.train import train

    runs = {}
    for name, overrides in {
        "iris": ["experiment=notes0_iris_2features", "trainer.max_epochs=1", "data.steps_per_epoch=300",
                 "steps_per_call=300"],
        "cnn": ["model=notes0_cnn", "data=digits", "trainer.max_epochs=1"],
    }.items():
        folder = tmp_path_factory.mktemp(name)
        # checkpoints only: no summaries, progress bar or report images (faster)
        cfg = compose_in(folder, "train", [*overrides, "callbacks=[none,model_checkpoint]", "trainer.accelerator=cpu"])
        train(cfg)
        GlobalHydra.instance().clear()
        runs[name] = (folder / "run", folder / "run" / "checkpoints" / "last.ckpt")
        assert runs[name][1].is_file()
    return runs


@pytest.fixture
def visualize(tmp_path):
    """`visualize("topic", "key=value", ...)` runs the topic in process; returns (out_dir, files)."""
    from hydra.core.global_hydra import GlobalHydra

    from src.visualize import visualize as run

    def call(topic: str, *overrides: str):
        out_dir = tmp_path / topic
        cfg = compose_in(tmp_path, "visualize", [f"topic={topic}", f"out_dir={out_dir}", *overrides])
        try:
            return out_dir, run(cfg)
        finally:
            GlobalHydra.instance().clear()

    return call


# --- the documented commands, as subprocesses ----------------------------------------------------
def test_filters_command_writes_its_pngs(cli):
    result = cli("src.visualize", "filters", "index=5")
    assert result.returncode == 0, result.output[-3000:]
    out = result.cwd / "logs" / "visuals" / "filters"
    for name in ("filters", "edge_filters", "diagonal_kernel", "notes4_example"):
        check_png(out / f"{name}.png", min_width=800)
        assert f"wrote {out / name}.png" in result.stdout
    assert not (out / ".hydra").exists()


def test_cnn_command_draws_filters_and_feature_maps_into_tensorboard(cli, checkpoints):
    run_dir, ckpt = checkpoints["cnn"]
    result = cli("src.visualize", "cnn", f"ckpt_path={ckpt}", "index=2", f"run_dir={run_dir}", "out_dir=cnn_pngs")
    assert result.returncode == 0, result.output[-3000:]
    check_png(result.cwd / "cnn_pngs" / "cnn_filters.png")
    check_png(result.cwd / "cnn_pngs" / "cnn_feature_maps.png")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert {"visuals/cnn/cnn_filters", "visuals/cnn/cnn_feature_maps"} <= set(events.Tags()["images"])


# --- the other topics, in process -------------------------------------------------------------------
def test_activations_topic(visualize):
    out, files = visualize("activations", "steps=3")
    assert [f.name for f in files] == ["activations.png", "cross_entropy_vs_l1.png", "vanishing_gradients.png"]
    for f in files:
        check_png(f)


def test_pooling_topic(visualize):
    out, files = visualize("pooling", "index=1")
    assert {f.name for f in files} == {"pooling.png", "pooling_example.png", "resize_vs_maxpool.png"}
    for f in files:
        check_png(f)


def test_iris_topic_from_a_checkpoint_and_trained_in_process(visualize, checkpoints):
    _, files = visualize("iris", f"ckpt_path={checkpoints['iris'][1]}")
    check_png(files[0], min_width=600)
    _, files = visualize("iris", "steps=50")  # no checkpoint: the recipe, trained here (shortened)
    check_png(files[0], min_width=600)


def test_loading_a_trained_model_leaves_the_random_numbers_alone(checkpoints):
    from src.teaching.trained import load_trained

    torch.manual_seed(123)
    expected = torch.rand(3)  # what the next draws are without a load in between
    torch.manual_seed(123)
    trained = load_trained(str(checkpoints["cnn"][1]))
    # neither the checkpoint's stored RNG state (for resuming) is applied nor the rebuilt net's init draws count
    assert torch.equal(torch.rand(3), expected)
    assert not trained.module.training and 0 <= trained.accuracy() <= 1


def test_xor_topic_trained_in_process(visualize):
    _, files = visualize("xor", "steps=30")
    (png,) = files
    assert png.name == "xor_decision_boundaries.png"
    check_png(png, min_width=800)


def test_datasets_topic_writes_the_markdown_table(visualize, capsys):
    out, files = visualize("datasets")
    assert files == [out / "datasets.md"]
    table = files[0].read_text()
    cifar10 = "| `data=cifar10` | CIFAR-10 | 32 x 32 x 3 | 10 | 50,000 (5,000 per class) | 10,000 (1,000 per class)"
    assert cifar10 in table
    assert "| `data=mnist` | MNIST | 28 x 28 x 1 | 10 | 60,000 | 10,000 |" in table
    assert "| `data=stl10` | STL-10 | 96 x 96 x 3 | 10 | 5,000 (500 per class) | 8,000 (800 per class)" in table
    assert "| `data=svhn` | SVHN | 32 x 32 x 3 | 10 | 73,257 | 26,032 |" in table
    assert "CIFAR-100" in table and "Fashion-MNIST" in table and "| `data=iris`" not in table
    assert table.splitlines()[0] in capsys.readouterr().out


def test_datasets_table_matches_the_digits_data_module():
    """The digits row is computed from the config's fractions: the data module makes the same splits."""
    from src.data.digits import DigitsDataModule
    from src.teaching.datasets import dataset_rows

    (row,) = [r for r in dataset_rows() if r["config"] == "`data=digits`"]
    dm = DigitsDataModule(name="digits", num_classes=10, input_shape=[1, 8, 8])
    dm.setup()
    assert row["test"] == f"{len(dm.test_split)}"
    assert row["train"] == f"{len(dm.train_split) + len(dm.val_split):,}"
    assert row["validation here"].startswith(f"{len(dm.val_split)} of")


@pytest.mark.parametrize(
    ("topic", "overrides", "fragment"),
    [
        ("cnn", ["ckpt_path=CKPT_IRIS"], "no convolution layer"),
        ("cnn", [], "needs ckpt_path=PATH"),
        ("cnn", ["ckpt_path=missing.ckpt"], "no checkpoint at missing.ckpt"),
        ("iris", ["ckpt_path=CKPT_CNN"], "needs a model trained on iris"),
        ("xor", ["mlp_ckpt=CKPT_IRIS", "steps=5"], "trained on the logic gates"),
        ("filters", ["data=iris"], "needs an image data set"),
        ("filters", ["index=100000"], "outside the digits test split"),
        ("nonsense", [], "topic='nonsense' is unknown"),
    ],
)
def test_bad_input_is_one_sentence(visualize, checkpoints, topic, overrides, fragment):
    paths = {"CKPT_IRIS": str(checkpoints["iris"][1]), "CKPT_CNN": str(checkpoints["cnn"][1])}
    overrides = [o.split("=")[0] + "=" + paths.get(o.split("=")[1], o.split("=")[1]) for o in overrides]
    with pytest.raises(UserError, match=fragment) as error:
        visualize(topic, *overrides)
    assert "\n" not in str(error.value)


def test_a_topic_is_required(tmp_path):
    from hydra.core.global_hydra import GlobalHydra

    from src.visualize import visualize

    cfg = compose_in(tmp_path, "visualize", [])
    GlobalHydra.instance().clear()
    with pytest.raises(UserError, match="name a topic: python -m src.visualize <topic>, one of activations"):
        visualize(cfg)


def test_run_dir_must_exist(visualize, tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        visualize("pooling", f"run_dir={tmp_path / 'nope'}")


# --- the computing parts ---------------------------------------------------------------------------
def test_derivatives_by_autograd_match_the_formulas():
    from src.teaching.activations import LEAKY_SLOPE, activation_curves

    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    curves = activation_curves(x)
    s = torch.sigmoid(x)
    assert torch.allclose(curves["sigmoid"][1], s * (1 - s))
    assert torch.allclose(curves["tanh"][1], 1 - torch.tanh(x) ** 2)
    assert torch.equal(curves["ReLU"][1], (x > 0).double())
    assert torch.allclose(curves[f"Leaky ReLU (a={LEAKY_SLOPE})"][1], torch.where(x > 0, 1.0, LEAKY_SLOPE).double())
    p = torch.softmax(x, 0)
    assert torch.allclose(curves["softmax"][0], p) and torch.allclose(curves["softmax"][1], p * (1 - p))
    assert float(curves["sigmoid"][1].max()) == pytest.approx(0.25)  # why deep sigmoid nets lose gradient


def test_deep_sigmoid_mlp_gradients_vanish_relu_ones_much_less():
    from sklearn.datasets import load_digits

    from src.teaching.activations import measure_gradient_norms

    digits = load_digits()
    x = torch.tensor(digits.data[:500] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[:500])
    sigmoid = list(measure_gradient_norms(x, y, "sigmoid", steps=3).values())
    relu = list(measure_gradient_norms(x, y, "relu", steps=3).values())
    assert len(sigmoid) == len(relu) == 9  # 8 hidden layers + the output layer
    assert sigmoid[-1] / sigmoid[0] > 1_000 and sigmoid[-1] / sigmoid[0] > 10 * relu[-1] / relu[0]


def test_edge_filters_respond_to_edges_in_their_direction():
    from src.teaching.conv_arithmetic import filter_with_zero_border
    from src.teaching.filters import EDGE_FILTERS, KERNELS, edge_responses

    step = torch.zeros(6, 6, dtype=torch.float64)
    step[:, 3:] = 1.0  # a vertical edge: left dark, right bright
    for name in EDGE_FILTERS:
        h, v, combined = edge_responses(step, name)
        assert h.abs().sum() > 0 and combined.max() > 0, name
    assert edge_responses(step, "Sobel")[1].abs().sum() == 0  # the V kernel sees no horizontal edge
    flat = torch.full((5, 5), 0.5, dtype=torch.float64)
    for name in ("identity", "sharpen", "box blur", "Gaussian blur"):  # weights sum to 1: flat stays flat
        assert torch.allclose(filter_with_zero_border(flat, KERNELS[name])[1:-1, 1:-1], flat[1:-1, 1:-1]), name


# --- the GradientNormLogger callback ----------------------------------------------------------------
def logged_grad_norms(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    import csv

    (metrics,) = run_dir.rglob("metrics.csv")
    series: dict[str, list[tuple[int, float]]] = {}
    with open(metrics, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key.startswith("grad_norm/") and value:
                    series.setdefault(key, []).append((int(row["step"]), float(value)))
    return series


@pytest.mark.parametrize(
    ("overrides", "expected_steps"),
    [
        (["data=digits", "trainer.max_epochs=1", "data.batch_size=256"], [0, 3]),  # 5 steps: automatic mode
        (["experiment=notes0_iris_2features", "trainer.max_epochs=2", "data.steps_per_epoch=10",
          "steps_per_call=10"], [0, 3, 6, 9, 12, 15, 18]),  # 10 steps per call: still every 3rd step
    ],
    ids=["automatic", "steps_per_call"],
)
def test_gradient_norm_logger_in_both_training_modes(tmp_path, overrides, expected_steps):
    from hydra.core.global_hydra import GlobalHydra

    from src.train import train

    cfg = compose_in(tmp_path, "train", [*overrides, "callbacks=[none,gradient_norms]", "logger=csv",
                                         "callbacks.gradient_norms.every_n_steps=3", "trainer.accelerator=cpu"])
    try:
        train(cfg)
    finally:
        GlobalHydra.instance().clear()
    series = logged_grad_norms(tmp_path / "run")
    assert series, json.dumps(series)
    for name, points in series.items():
        assert [step for step, _ in points] == expected_steps, name
        assert all(value > 0 for _, value in points)
    layers = {name.split("/", 1)[1] for name in series}
    assert layers == ({"net.layers.1", "net.layers.3"} if "data=digits" in overrides else {"net.linear"})

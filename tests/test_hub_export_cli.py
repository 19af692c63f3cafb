"""`src.export format=hub`: a model folder that gives the checkpoint's logits back (MLP, CNN, timm model started from
a local weights file), loads with timm's own loader, and has a model card whose metrics are the run's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, CliResult, assert_one_sentence, run_module

NETS = {
    "mlp": ["model=mlp"],
    "cnn": ["model=notes0_cnn"],
    "timm": ["model=timm", "model.net.name=test_resnet", "data.image_size=32"],
}
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=5", "logger=none", "callbacks.progress_bar=null"]


def run_cli(cwd: Path, module: str, *args: str) -> CliResult:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="120", HF_HUB_OFFLINE="1")
    return CliResult(run_module(module, args, cwd, env), cwd)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One short digits run per net, each exported as a model folder."""
    import timm
    from safetensors.torch import save_file

    cwd = tmp_path_factory.mktemp("hub_export")
    start = timm.create_model("test_resnet", num_classes=10, in_chans=1)  # the local weights file timm starts from
    save_file(start.state_dict(), str(cwd / "start.safetensors"))
    out = {}
    for name, args in NETS.items():
        extra = [f"model.net.weights_file={cwd / 'start.safetensors'}"] if name == "timm" else []
        data = ["data=image_folder", f"data.root={digits_folder(cwd)}", "data.channels=1"] if name == "timm" \
            else ["data=digits"]
        result = run_cli(cwd, "src.train", *data, *args, *extra, *QUICK, f"hydra.run.dir=runs/{name}")
        assert result.returncode == 0, result.output[-3000:]
        ckpt = cwd / "runs" / name / "checkpoints" / "last.ckpt"
        folder = cwd / "folders" / name
        export = run_cli(cwd, "src.export", f"ckpt_path={ckpt}", "format=hub", f"output={folder}")
        assert export.returncode == 0, export.output[-3000:]
        out[name] = {"ckpt": ckpt, "folder": folder, "run": ckpt.parent.parent}
    return cwd, out


def digits_folder(cwd: Path) -> Path:
    """scikit-learn's digits (0..16 grey levels) as PNG class folders, 40 per class."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    root = cwd / "digits"
    if not root.exists():
        digits = load_digits()
        for i, (image, label) in enumerate(zip(digits.images, digits.target)):
            if (digits.target[:i] == label).sum() >= 40:
                continue
            (root / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray((image * 15).astype(np.uint8), "L").save(root / str(label) / f"{i:04d}.png")
    return root


@pytest.mark.parametrize("name", list(NETS))
def test_the_model_folder_gives_the_checkpoints_logits(exported, name):
    from src.inference.model import rebuild_module
    from src.runs.checkpoint import load_checkpoint

    _, runs = exported
    paths = runs[name]
    assert {"model.safetensors", "config.json", "README.md"} <= {p.name for p in paths["folder"].iterdir()}
    original = rebuild_module(*load_checkpoint(str(paths["ckpt"])))
    loaded = rebuild_module(*load_checkpoint(str(paths["folder"])))
    shape = json.loads((paths["folder"] / "config.json").read_text())["input_shape"]
    x = torch.randn(6, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = original.net(x), loaded.net(x)
    assert torch.allclose(got, expected, atol=1e-6, rtol=0), float((got - expected).abs().max())
    if name == "timm":  # timm's own loader reads the folder through its pretrained_cfg keys
        import timm

        net = timm.create_model(f"local-dir:{paths['folder']}", pretrained=True).eval()
        assert net.pretrained_cfg["label_names"] == [str(i) for i in range(10)]
        with torch.no_grad():
            assert torch.allclose(net(x), expected, atol=1e-6, rtol=0)


def test_eval_takes_the_folder_as_the_checkpoint(exported):
    cwd, runs = exported
    paths = runs["cnn"]
    evaluated = run_cli(cwd, "src.eval", f"ckpt_path={paths['folder']}", "logger=none")
    assert evaluated.returncode == 0, evaluated.output[-3000:]
    # one epoch: the run's test metrics (best checkpoint) are those of last.ckpt, the folder's source
    recorded = json.loads((paths["run"] / "metrics.json").read_text())["metrics"]
    assert f"acc={recorded['test/acc']:.4f} loss={recorded['test/loss']:.4f}" in evaluated.output


def test_the_cards_metrics_are_the_runs_metrics_json(exported):
    _, runs = exported
    for paths in runs.values():
        card = (paths["folder"] / "README.md").read_text()
        header = card.split("---\n")[1]
        import yaml

        listed = yaml.safe_load(header)["model-index"][0]["results"][0]["metrics"]
        in_card = {m["name"]: m["value"] for m in listed if m["name"] != "test/ece"}
        recorded = {k: v for k, v in json.loads((paths["run"] / "metrics.json").read_text())["metrics"].items()
                    if k.startswith("test/")}
        assert in_card == recorded
        assert "test/ece" in {m["name"] for m in listed}
        assert "## Per-class metrics (test)" in card and (paths["folder"] / "confusion_matrix.png").is_file()
        assert "split fingerprint" in card and "## Intended use and limitations" in card


def test_push_to_offline_writes_the_folder_and_says_so_in_one_sentence(exported, tmp_path):
    _, runs = exported
    folder = tmp_path / "pushed"
    result = run_cli(tmp_path, "src.export", f"ckpt_path={runs['mlp']['ckpt']}", "format=hub", f"output={folder}",
                     "push_to=someone/digits-mlp")
    assert_one_sentence(result, "HF_HUB_OFFLINE", "someone/digits-mlp", "written")
    assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()

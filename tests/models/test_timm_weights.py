"""`model=timm` and `model.net.weights_file`: a small timm model saved to local files and loaded back (weights
equal; the head re-initialised for another class count; mismatches in one sentence), timm's pretrained
weights from the local cache or, offline, one sentence within seconds; torchvision's ResNet-18 state dict
in `model=resnet18 model.net.stem=imagenet`; the `model` normalisation and size; fine-tuning's groups."""

from __future__ import annotations

import logging

import pytest
import timm
import torch

from src.builders import build_module
from src.errors import UserError
from tests.own_data import user_error

NAME = "test_resnet"  # timm's 0.37 M-parameter ResNet for tests


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """test_resnet at 1000 classes saved as .safetensors and as .pth (a training checkpoint's nesting)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    state = timm.create_model(NAME).state_dict()
    save_file(state, folder / "test_resnet.safetensors")
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}, "epoch": 3}, folder / "test_resnet.pth")
    return folder, state


def timm_net(*extra: str, data: str = "cifar10", compose):
    cfg = compose([f"data={data}", "model=timm", f"model.net.name={NAME}", *extra])
    return cfg, build_module(cfg.model, cfg.optimizer, cfg.scheduler).net


@pytest.mark.parametrize("suffix", ["safetensors", "pth"])
def test_a_local_weights_file_loads_equal_weights(saved, compose, suffix):
    folder, state = saved
    _, net = timm_net(f"model.net.weights_file={folder}/test_resnet.{suffix}", "data.num_classes=1000", compose=compose)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_another_class_count_reinitialises_the_head_and_says_so(saved, compose, caplog):
    folder, state = saved
    with caplog.at_level(logging.WARNING):
        _, net = timm_net(f"model.net.weights_file={folder}/test_resnet.safetensors", compose=compose)  # 10 classes
    own = net.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert own["fc.weight"].shape == (10, state["fc.weight"].shape[1])
    assert "the classifier head (fc) is re-initialised for 10 classes; the weights in" in caplog.text
    assert "have 1000" in caplog.text
    # grey images: the RGB input convolution is summed over its channels, as timm adapts it
    _, grey = timm_net(f"model.net.weights_file={folder}/test_resnet.safetensors", data="fashion_mnist",
                       compose=compose)
    assert torch.allclose(grey.state_dict()["conv1.0.weight"], state["conv1.0.weight"].sum(1, keepdim=True))


def test_weights_of_another_architecture_are_one_sentence_listing_keys(tmp_path, compose):
    from safetensors.torch import save_file

    save_file(timm.create_model("test_efficientnet").state_dict(), tmp_path / "other.safetensors")
    with user_error(r"the weights in .*other.safetensors do not fit timm test_resnet \(missing: conv1.0.weight, "
                    r"conv1.1.weight, conv1.1.bias, conv1.1.running_mean and \d+ more; unexpected: blocks\.0\.0\."):
        timm_net(f"model.net.weights_file={tmp_path}/other.safetensors", compose=compose)
    (tmp_path / "broken.pth").write_bytes(b"not a pickle")
    with user_error(r"model.net.weights_file=.*broken.pth cannot be read \(UnpicklingError"):
        timm_net(f"model.net.weights_file={tmp_path}/broken.pth", compose=compose)
    torch.save({"state_dict": {}, "optimizer": torch.optim.SGD}, tmp_path / "pickled.pth")  # a Python object
    with user_error(r"model.net.weights_file=.*pickled.pth holds Python objects \(torch.optim.sgd.SGD\) that "
                    r"weights-only loading refuses: it is unsafe to load \(unpickling it could run code\); save "):
        timm_net(f"model.net.weights_file={tmp_path}/pickled.pth", compose=compose)
    with user_error(r"timm has no model named 'test_resnett'; did you mean test_resnet"):
        compose_and_build(compose, "data=cifar10", "model=timm", "model.net.name=test_resnett")


def compose_and_build(compose, *overrides):
    cfg = compose(list(overrides))
    return build_module(cfg.model, cfg.optimizer, cfg.scheduler)


def test_pretrained_offline_ends_at_once_in_one_sentence_naming_weights_file(compose, monkeypatch):
    import time

    from src.models.nets import timm_net as module

    sentence = (r"timm's pretrained weights for test_resnet are not in the local cache and cannot be downloaded "
                r"\(%s\): download them where there is network \(model.safetensors of "
                r"https://huggingface.co/timm/test_resnet.r160_in1k\) and pass model.net.weights_file=PATH instead of "
                r"model.net.pretrained=true.")
    monkeypatch.setattr(module, "cached_weights", lambda cfg: None)  # whatever this machine's cache holds
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with user_error(sentence % "HF_HUB_OFFLINE is set"):
        timm_net("model.net.pretrained=true", compose=compose)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a closed port: no hub, on any machine
    started = time.perf_counter()
    with user_error(sentence % r"\w+Error from http://127.0.0.1:9"):
        timm_net("model.net.pretrained=true", compose=compose)
    assert time.perf_counter() - started < 60  # not a minute of retries (a loose bound: it takes well under one)


def test_pretrained_weights_in_the_local_hub_cache_load_without_network(tmp_path, compose, monkeypatch, saved):
    from huggingface_hub import constants
    from safetensors.torch import save_file

    _, state = saved
    snapshot = tmp_path / "hub" / "models--timm--test_resnet.r160_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    save_file(state, snapshot / "model.safetensors")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, net = timm_net("model.net.pretrained=true", "data.num_classes=1000", compose=compose)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_data_normalisation_and_size_can_come_from_the_pretrained_config(compose, tmp_path):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "pics" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (30, 20), (40 * i, 80, 120)).save(tmp_path / "pics" / label / f"{i}.png")
    cfg = compose(["data=image_folder", f"data.root={tmp_path / 'pics'}", "data.image_size=model", "data.mean=model",
                   "data.std=model", "model=timm", f"model.net.name={NAME}"])
    from src.builders import build_datamodule

    assert list(cfg.data.input_shape) == [3, 160, 160]  # test_resnet's pretrained input size
    dm = build_datamodule(cfg.data)
    assert dm.mean == [0.5, 0.5, 0.5] and dm.std == [0.5, 0.5, 0.5]


def test_torchvision_resnet18_weights_load_into_the_projects_resnet18(tmp_path, compose):
    import torchvision

    reference = torchvision.models.resnet18().eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    cfg = compose(["model=resnet18", "data=random_images", "data.input_shape=[3,64,64]", "data.num_classes=1000",
                   "model.net.stem=imagenet", f"model.net.weights_file={tmp_path / 'resnet18.pth'}"])
    net = build_module(cfg.model, cfg.optimizer, cfg.scheduler).net.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), reference(x))
    with user_error(r"do not fit resnet18 \(other shapes: stem.0.weight \[64, 3, 7, 7\] vs the net's \[64, 3, 3, 3\]\)"
                    r"; pass weights saved from the same architecture; torchvision's ResNet weights need "
                    r"model.net.stem=imagenet."):
        compose_and_build(compose, "model=resnet18", "data=cifar10", f"model.net.weights_file={tmp_path}/resnet18.pth")


def test_backbone_lr_scale_gives_the_backbone_its_own_group(compose):
    cfg = compose(["data=cifar10", "model=timm", f"model.net.name={NAME}", "optimizer.backbone_lr_scale=0.1",
                   "optimizer=adamw", "optimizer.lr=0.01"])
    module = build_module(cfg.model, cfg.optimizer, cfg.scheduler)
    optimizer = module.configure_optimizers()
    groups = {len(g["params"]): g["lr"] for g in optimizer.param_groups}
    head = sum(1 for _ in module.net.fc.parameters())
    assert groups[head] == pytest.approx(0.01)
    assert groups[len(list(module.net.parameters())) - head] == pytest.approx(0.001)
    with user_error(r"optimizer.backbone_lr_scale cannot be combined with scheduler=onecycle"):
        compose_and_build(compose, "data=cifar10", "model=timm", f"model.net.name={NAME}", "scheduler=onecycle",
                          "optimizer.backbone_lr_scale=0.1")
    with user_error(r"optimizer.backbone_lr_scale must be a positive number"):
        compose_and_build(compose, "data=cifar10", "model=timm", f"model.net.name={NAME}",
                          "optimizer.backbone_lr_scale=-1")
    with pytest.raises(UserError, match=r"callbacks.freeze_backbone.epochs must be a whole number of epochs"):
        from src.callbacks.finetune import FreezeBackbone

        FreezeBackbone(epochs=1.5)

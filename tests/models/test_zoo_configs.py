"""Every CNN-zoo model config composes with grey 28 px and colour 32 px data configs, builds, runs a
forward pass and a training step; impossible pairs fail in one sentence; GoogLeNet's auxiliary loss;
the image experiments carry the course notes' recipes."""

from __future__ import annotations

import hydra.utils
import pytest
import torch

from src.builders import build_module
from src.config.names import CONF, plain
from src.errors import UserError
from src.models.googlenet_module import GoogLeNetModule
from src.models.nets.googlenet import GoogLeNetOutputs
from tests.conftest import assert_one_sentence

# Every model config is tested here but these, which the named tests cover: the binary-gate models (one
# output unit; tests/test_train_cli.py), timm's (tests/models/test_timm_weights.py) and the speed-run
# net, whose first layer is fitted to the training data (tests/models/test_speedrun.py).
TESTED_ELSEWHERE = {"perceptron", "xor_mlp", "timm", "speedrun_net"}
ZOO = sorted(p.stem for p in (CONF / "model").glob("*.yaml") if p.stem not in TESTED_ELSEWHERE)
IMAGE_EXPERIMENTS = sorted(
    p.stem for p in (CONF / "experiment").glob("*.yaml")
    if any(d in p.stem for d in ("mnist", "cifar"))
)


def build(compose, model: str, data: str, *extra: str):
    cfg = compose([f"model={model}", f"data={data}", *extra])
    return cfg, build_module(cfg.model, cfg.optimizer, cfg.scheduler)


@pytest.mark.parametrize("data", ["fashion_mnist", "cifar10"])
@pytest.mark.parametrize("model", ZOO)
def test_zoo_model_builds_forwards_and_trains_one_step(compose, model, data):
    cfg, module = build(compose, model, data)
    shape = tuple(cfg.data.input_shape)
    torch.manual_seed(0)
    x, y = torch.randn(2, *shape), torch.tensor([0, 9])
    module.eval()
    with torch.no_grad():
        assert module(x).shape == (2, 10)
    module.train()
    loss = module.training_step((x, y), 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad)


def test_vgg_batch_norm_option(compose):
    _, module = build(compose, "vgg11", "cifar10", "model.net.batch_norm=true")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in module.net.modules())


def test_vgg_and_alexnet_configs_choose_the_head_by_image_size(compose):
    """On the zoo's small images the configs keep the narrow heads; the original heads are one choice away."""
    for model in ("vgg16", "alexnet"):
        cfg = compose([f"model={model}", "data=random_images", "data.input_shape=[3,224,224]", "data.num_classes=1000"])
        with torch.device("meta"):  # 138 M / 61 M parameters: count them without allocating them
            net = hydra.utils.instantiate(cfg.model.net)
        assert net.classifier_kind == "imagenet"
        assert sum(p.numel() for p in net.parameters()) == {"vgg16": 138_357_544, "alexnet": 61_100_840}[model]
        _, small = build(compose, model, "cifar10")
        assert small.net.classifier_kind == "small"


def test_an_unknown_head_is_one_sentence_before_training(cli_in_process):
    result = cli_in_process("src.train", "model=vgg11", "data=cifar10", "model.net.classifier=wide")
    assert_one_sentence(result, "model.net.classifier='wide'", "'auto', 'small', 'imagenet'")


def test_deep_mlp_is_notes3s_net_with_the_softmax_knob(compose):
    _, module = build(compose, "deep_mlp", "fashion_mnist")
    widths = [m.out_features for m in module.net.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [500, 400, 300, 200, 100, 50, 10]
    assert not any(isinstance(m, torch.nn.Softmax) for m in module.net.modules())
    _, with_softmax = build(compose, "deep_mlp", "fashion_mnist", "model.net.output_softmax=true")
    assert isinstance(list(with_softmax.net.modules())[-1], torch.nn.Softmax)


def test_notes4_cnn_has_the_notes_parameter_counts(compose):
    count = lambda m: sum(p.numel() for p in m.net.parameters())
    assert count(build(compose, "notes4_dropout_cnn", "fashion_mnist")[1]) == 225_546
    assert count(build(compose, "notes4_dropout_cnn", "fashion_mnist", "model.net.first_kernel=3")[1]) == 225_034


def test_an_image_too_small_for_the_net_is_one_sentence_naming_the_sizes(compose):
    with pytest.raises(UserError) as info:
        build(compose, "lenet", "digits")
    message = str(info.value)
    assert "12x12" in message and "1x8x8" in message and "\n" not in message


# --- GoogLeNet: auxiliary classifiers in training only ---------------------------------------------
@pytest.fixture
def googlenet(compose) -> GoogLeNetModule:
    return build(compose, "googlenet", "fashion_mnist", "data.input_shape=[1,16,16]")[1]


def test_googlenet_training_loss_adds_the_weighted_auxiliary_losses(googlenet):
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    googlenet.train()
    torch.manual_seed(0)  # the same dropout masks for both forward passes
    loss = googlenet.training_step((x, y), 0)
    torch.manual_seed(0)
    outputs = googlenet.net(x)
    assert isinstance(outputs, GoogLeNetOutputs)
    ce = torch.nn.functional.cross_entropy
    main = ce(outputs.logits, y)
    expected = main + 0.3 * (ce(outputs.aux_logits1, y) + ce(outputs.aux_logits2, y))
    assert torch.allclose(loss, expected, atol=1e-5)
    assert not torch.allclose(loss, main)


def test_googlenet_evaluates_with_the_main_head_only(googlenet):
    googlenet.eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        logits = googlenet(x)
        assert isinstance(logits, torch.Tensor) and logits.shape == (2, 10)
        assert torch.allclose(googlenet.predict_step((x,), 0).sum(1), torch.ones(2))


def test_googlenet_without_aux_heads_and_bad_weight(compose):
    _, module = build(compose, "googlenet", "fashion_mnist", "data.input_shape=[1,16,16]",
                      "model.net.aux_logits=false")
    module.train()
    loss = module.training_step((torch.randn(2, 1, 16, 16), torch.tensor([0, 1])), 0)
    assert torch.isfinite(loss)
    with pytest.raises(UserError, match="aux_weight"):
        build(compose, "googlenet", "fashion_mnist", "model.aux_weight=-1")


# --- the course notes' image recipes -----------------------------------------------------------------------
@pytest.mark.parametrize("experiment", IMAGE_EXPERIMENTS)
def test_image_experiment_composes_and_builds_its_model(compose, experiment):
    cfg = compose([f"experiment={experiment}"])
    plain(cfg)
    assert cfg.data.name in experiment and len(cfg.data.mean) == cfg.data.input_shape[0]
    build_module(cfg.model, cfg.optimizer, cfg.scheduler)


def test_notes_recipes_carry_the_notes_numbers(compose):
    cfg = compose(["experiment=notes0_mlp2_fashion_mnist"])
    assert (cfg.data.name, cfg.data.batch_size, list(cfg.data.mean), list(cfg.data.std)) == (
        "fashion_mnist", 500, [0.5], [0.5])
    assert list(cfg.model.net.hidden_sizes) == [128, 128] and cfg.optimizer.lr == 0.01
    assert cfg.trainer.max_epochs == 10
    cfg = compose(["experiment=notes2_simple_cnn_cifar10"])
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.data.batch_size) == (0.01, 0.9, 64)
    cfg = compose(["experiment=notes3_deep_mlp_cifar10"])
    assert cfg.data.val_fraction == 0.2 and cfg.data.batch_size == 256 and cfg.model.net.activation == "leaky_relu"
    assert cfg.callbacks.early_stopping.monitor == "val/loss" and cfg.callbacks.early_stopping.patience == 5
    assert (cfg.callbacks.model_checkpoint.monitor, cfg.callbacks.model_checkpoint.mode) == ("val/loss", "min")

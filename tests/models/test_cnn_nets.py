"""The CNN zoo: every builder on 28/32/96 px (shape + one SGD step), size errors, exact sizes."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

from src.config.names import CONF
from src.errors import UserError
from src.models.nets.alexnet import alexnet
from src.models.nets.common import InputShapeError, conv_output_size
from src.models.nets.googlenet import GoogLeNetOutputs, googlenet
from src.models.nets.lenet import lenet5
from src.models.nets.resnet import Bottleneck, resnet18, resnet34, resnet50, resnet101
from src.models.nets.small_cnns import notes0_cnn, notes1_cnn, notes2_simple_cnn, notes4_dropout_cnn
from src.models.nets.vgg import vgg11, vgg13, vgg16, vgg19

# Not tested here: nets that are not convolutional (tests/models/test_classifier.py, test_zoo_configs.py and
# the config tests build them), timm's (tests/models/test_timm_weights.py), and the speed-run net, whose
# first layer is fitted to the data and never trained (tests/models/test_speedrun.py).
NOT_HERE = ("src.models.nets.mlp.", "src.models.nets.linear.", "src.models.nets.timm_net.", "src.models.nets.speedrun.")


def cnn_builders() -> dict[str, Callable[..., nn.Module]]:
    """{config name: the builder its `net._target_` names} for every conf/model/*.yaml with a CNN of its own
    (a file that only inherits another's net, such as resnet.yaml, is tested through that file)."""
    builders = {}
    for path in sorted((CONF / "model").glob("*.yaml")):
        target = (OmegaConf.load(path).get("net") or {}).get("_target_")
        if target and not target.startswith(NOT_HERE):
            builders[path.stem] = hydra.utils.get_method(target)
    return builders


# Every CNN of conf/model/, plus variants chosen by a net argument.
BUILDERS = {**cnn_builders(), "lenet_tanh": partial(lenet5, activation="tanh"),
            "vgg11_bn": partial(vgg11, batch_norm=True)}
SHAPES = [(1, 28, 28), (3, 32, 32), (3, 96, 96)]
# The file runs in ~10 s on 2 idle cores (~25 s with every net at 96 px), several times longer when
# other processes share the cores (torch's threads then contend). To keep it short, the deepest nets
# skip 96 px: they are made of the same blocks and stems as vgg11, resnet18 and resnet50, which are
# tested at 96 px (where the ResNets and GoogLeNet switch to their ImageNet stems).
SLOW_AT_96PX = {"vgg11_bn", "vgg13", "vgg16", "vgg19", "resnet34", "resnet101"}
CASES = [
    (name, shape) for name in BUILDERS for shape in SHAPES if not (shape[1] == 96 and name in SLOW_AT_96PX)
]
# Nets whose convolutions cannot fit 8x8 images (the `digits` data set), with their minimum side.
# The others handle 8x8: padded convs, ceil-mode pools (VGG, GoogLeNet) or adaptive pooling.
TOO_SMALL_AT_8PX = {"notes1_mnist_cnn": 20, "notes4_dropout_cnn": 12, "lenet": 12, "lenet_tanh": 12}


def loss_of(output: torch.Tensor | GoogLeNetOutputs, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; for GoogLeNet's training outputs, logits loss + 0.3 * (aux1 + aux2 losses)."""
    if isinstance(output, GoogLeNetOutputs):
        aux = F.cross_entropy(output.aux_logits1, target) + F.cross_entropy(output.aux_logits2, target)
        return F.cross_entropy(output.logits, target) + 0.3 * aux
    return F.cross_entropy(output, target)


def check_shape_and_one_step(model: nn.Module, shape: tuple[int, int, int], num_classes: int) -> None:
    x = torch.randn(2, *shape)
    target = torch.tensor([0, num_classes - 1])
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, num_classes)
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = loss_of(model(x), target)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    assert changed[0] and changed[-1]  # first conv and last layer
    assert sum(changed) >= 0.9 * len(changed)


@pytest.mark.parametrize(("name", "shape"), CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
def test_forward_shape_and_one_sgd_step(name: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = BUILDERS[name](input_shape=shape, num_classes=10)
    check_shape_and_one_step(model, shape, 10)


@pytest.mark.parametrize("name", ["notes1_mnist_cnn", "lenet", "resnet18"])
def test_seven_classes(name: str) -> None:
    torch.manual_seed(0)
    model = BUILDERS[name](input_shape=(3, 32, 32), num_classes=7)
    check_shape_and_one_step(model, (3, 32, 32), 7)


@pytest.mark.parametrize("name", BUILDERS)
def test_8px_images_work_or_raise_at_build_time(name: str) -> None:
    if name in TOO_SMALL_AT_8PX:
        need = TOO_SMALL_AT_8PX[name]
        with pytest.raises(InputShapeError, match=f"at least {need}x{need} pixels.*gives 1x8x8"):
            BUILDERS[name](input_shape=(1, 8, 8), num_classes=10)
    else:
        model = BUILDERS[name](input_shape=(1, 8, 8), num_classes=10).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_minimum_size_is_exact() -> None:
    notes1_cnn(input_shape=(1, 20, 20), num_classes=10)
    with pytest.raises(InputShapeError, match="notes1_cnn needs images of at least 20x20"):
        notes1_cnn(input_shape=(1, 19, 40), num_classes=10)
    notes4_dropout_cnn(input_shape=(1, 10, 10), num_classes=10, first_kernel=3)
    with pytest.raises(InputShapeError, match="at least 10x10"):
        notes4_dropout_cnn(input_shape=(1, 9, 9), num_classes=10, first_kernel=3)


def test_input_shape_must_be_chw() -> None:
    with pytest.raises(InputShapeError):
        lenet5(input_shape=(28, 28), num_classes=10)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_notes4_parameter_counts() -> None:
    assert n_params(notes4_dropout_cnn(input_shape=(1, 28, 28), num_classes=10)) == 225_546
    assert n_params(notes4_dropout_cnn(input_shape=(1, 28, 28), num_classes=10, first_kernel=3)) == 225_034
    assert notes4_dropout_cnn(input_shape=(1, 28, 28), num_classes=10).flat_features == 1600


def test_flatten_sizes() -> None:
    assert notes0_cnn(input_shape=(3, 32, 32), num_classes=10).flat_features == 6272
    assert notes1_cnn(input_shape=(1, 28, 28), num_classes=10).flat_features == 576
    assert notes2_simple_cnn(input_shape=(3, 32, 32), num_classes=10).flat_features == 4096
    assert lenet5(input_shape=(1, 28, 28), num_classes=10).flat_features == 16 * 5 * 5


def has_maxpool(module: nn.Module) -> bool:
    return any(isinstance(m, nn.MaxPool2d) for m in module.modules())


def test_resnet_stems_and_widths() -> None:
    small = resnet18(input_shape=(3, 32, 32), num_classes=10)
    assert small.stem_kind == "small" and not has_maxpool(small.stem)
    large = resnet18(input_shape=(3, 96, 96), num_classes=10)
    assert large.stem_kind == "imagenet" and has_maxpool(large.stem)
    assert has_maxpool(resnet18(input_shape=(3, 32, 32), num_classes=10, stem="imagenet").stem)
    assert small.fc.in_features == 512
    deep = resnet50(input_shape=(3, 32, 32), num_classes=10)
    assert Bottleneck.expansion == 4 and isinstance(deep.layer1[0], Bottleneck)
    assert deep.fc.in_features == 2048
    with pytest.raises(UserError, match="stem"):
        resnet18(input_shape=(3, 32, 32), num_classes=10, stem="tiny")


def test_googlenet_outputs() -> None:
    assert googlenet(input_shape=(3, 32, 32), num_classes=10).stem_kind == "small"
    assert googlenet(input_shape=(3, 96, 96), num_classes=10).stem_kind == "imagenet"
    model = googlenet(input_shape=(1, 28, 28), num_classes=5, aux_logits=False).train()
    out = model(torch.randn(2, 1, 28, 28))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5)
    model = googlenet(input_shape=(1, 28, 28), num_classes=5).train()
    out = model(torch.randn(2, 1, 28, 28))
    assert isinstance(out, GoogLeNetOutputs) and all(o.shape == (2, 5) for o in out)


def test_conv_output_size() -> None:
    assert conv_output_size(28, 3) == 26
    assert conv_output_size(4, 3) == 2
    assert conv_output_size(4, 2, stride=2) == 2
    assert conv_output_size(4, 3, padding=1) == 4
    assert conv_output_size(32, 5, stride=2, padding=2) == 16


# --- ImageNet sizes: the original stems and heads, torchvision's parameter counts -----------------------
# Built on the meta device: shapes and parameter counts without allocating or initialising 140 M weights.
def conv_channels(model: nn.Module) -> int:
    return sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_at_224px_has_torchvisions_parameter_count(depth: int, batch_norm: bool) -> None:
    import torchvision

    builder = {11: vgg11, 13: vgg13, 16: vgg16, 19: vgg19}[depth]
    with torch.device("meta"):
        ours = builder(input_shape=(3, 224, 224), num_classes=1000, batch_norm=batch_norm)
        theirs = getattr(torchvision.models, f"vgg{depth}_bn" if batch_norm else f"vgg{depth}")()
        assert ours(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)
    # torchvision's batch-norm variants keep a (redundant) bias in each conv; ours leave it to batch norm
    bias = conv_channels(theirs) if batch_norm else 0
    assert n_params(ours) == n_params(theirs) - bias
    assert ours.classifier_kind == "imagenet" and ours.classifier[1].in_features == 512 * 7 * 7
    if (depth, batch_norm) == (16, False):
        assert n_params(ours) == 138_357_544  # the paper's 138 M


def test_alexnet_at_224px_is_torchvisions() -> None:
    import torchvision

    with torch.device("meta"):
        ours = alexnet(input_shape=(3, 224, 224), num_classes=1000)
        theirs = torchvision.models.alexnet()
        assert ours(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)
    assert n_params(ours) == n_params(theirs) == 61_100_840
    assert ours.stem_kind == ours.classifier_kind == "imagenet"
    assert [tuple(m.weight.shape) for m in ours.modules() if isinstance(m, (nn.Conv2d, nn.Linear))] == [
        tuple(m.weight.shape) for m in theirs.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_resnet_at_224px_has_torchvisions_parameter_count(depth: int) -> None:
    import torchvision

    builder = {18: resnet18, 34: resnet34, 50: resnet50, 101: resnet101}[depth]
    with torch.device("meta"):
        ours = builder(input_shape=(3, 224, 224), num_classes=1000)
        theirs = getattr(torchvision.models, f"resnet{depth}")()
    assert ours.stem_kind == "imagenet" and n_params(ours) == n_params(theirs)


@pytest.mark.parametrize(("side", "kind"), [(28, "small"), (96, "small"), (127, "small"), (128, "imagenet")])
def test_vgg_and_alexnet_choose_their_head_by_image_size(side: int, kind: str) -> None:
    with torch.device("meta"):
        nets = [builder(input_shape=(3, side, side), num_classes=10) for builder in (vgg11, alexnet)]
    assert [net.classifier_kind for net in nets] == [kind, kind] and nets[1].stem_kind == kind
    widths = {"small": (512, 1024), "imagenet": (4096, 4096)}[kind]
    assert tuple(net.classifier[-1].in_features for net in nets) == widths


def test_small_image_heads_are_narrow_and_explicit_choices_win() -> None:
    assert n_params(alexnet(input_shape=(3, 32, 32), num_classes=10)) == 4_361_034
    assert n_params(vgg16(input_shape=(3, 32, 32), num_classes=10)) == 15_245_130
    assert vgg11(input_shape=(3, 32, 32), num_classes=10, classifier_width=64).classifier[-1].in_features == 64
    with torch.device("meta"):
        forced = vgg11(input_shape=(3, 32, 32), num_classes=10, classifier="imagenet")
        small = vgg11(input_shape=(3, 224, 224), num_classes=10, classifier="small")
        assert forced(torch.zeros(1, 3, 32, 32)).shape == (1, 10)  # the 1x1 map is pooled up to 7x7
    assert forced.classifier[1].in_features == 25_088 and small.classifier[1].in_features == 512
    with pytest.raises(InputShapeError, match="at least 63x63"):
        alexnet(input_shape=(3, 32, 32), num_classes=10, stem="imagenet")
    with pytest.raises(UserError, match="classifier must be 'auto', 'small' or 'imagenet'"):
        vgg11(input_shape=(3, 32, 32), num_classes=10, classifier="wide")

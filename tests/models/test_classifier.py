from pathlib import Path

import pytest
import torch

from src.errors import UserError
from src.models.binary import BinaryClassificationModule
from src.models.classifier import ClassificationModule
from src.models.nets.linear import perceptron, softmax_regression
from src.models.nets.mlp import MLP
from src.runs.resume import ResumePoint

SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
MLP_NET = {"_target_": "src.models.nets.mlp.MLP", "input_shape": [1, 8, 8], "num_classes": 10,
           "hidden_sizes": [16]}


def mlp_module(**kw):
    return ClassificationModule(net=dict(MLP_NET), num_classes=10, optimizer=dict(SGD), **kw)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("init", ["default", "xavier", "kaiming"])
def test_mlp_options_build_and_run(activation, init):
    net = MLP([1, 8, 8], 10, hidden_sizes=[32, 16], activation=activation, dropout=0.2, batch_norm=True, init=init)
    assert net(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.modules()) == 2
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == 2


def test_linear_nets():
    assert softmax_regression([4], 3)(torch.randn(5, 4)).shape == (5, 3)
    assert perceptron([2])(torch.randn(4, 2)).shape == (4, 1)
    assert sum(p.numel() for p in perceptron([2]).parameters()) == 3


def test_module_rebuilds_its_net_from_plain_hyperparameters():
    module = mlp_module()
    assert isinstance(module.net, MLP)
    assert module.hparams.net["hidden_sizes"] == [16]
    assert all(isinstance(v, (dict, list, str, int, float, type(None))) for v in module.hparams.values())


def test_loss_formulations_agree_inside_the_module():
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    losses = []
    for loss in ("cross_entropy", "log_softmax_nll", "softmax_log_nll"):
        torch.manual_seed(1)
        module = mlp_module(loss=loss)
        losses.append(module.compute_loss(module(x), y))
    assert torch.allclose(losses[0], losses[1], atol=1e-6) and torch.allclose(losses[0], losses[2], atol=1e-6)


def test_l1_penalty_is_added_to_the_training_loss():
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    torch.manual_seed(1)
    plain = mlp_module()
    torch.manual_seed(1)
    with_l1 = mlp_module(l1=0.01)
    weights = sum(p.abs().sum() for p in with_l1.net.parameters() if p.ndim > 1)
    diff = with_l1.training_step((x, y), 0) - plain.training_step((x, y), 0)
    assert diff.item() == pytest.approx(0.01 * weights.item(), rel=1e-5)


def test_binary_module_scores_are_two_columns():
    net = {"_target_": "src.models.nets.linear.perceptron", "input_shape": [2]}
    module = BinaryClassificationModule(net=net, optimizer=dict(SGD))
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    scores = module.class_scores(module(x))
    assert scores.shape == (2, 2) and torch.allclose(scores.sum(1), torch.ones(2))
    loss = module.compute_loss(module(x), torch.tensor([0, 1]))
    reference = torch.nn.BCELoss()(torch.sigmoid(module(x)).view(-1), torch.tensor([0.0, 1.0]))
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: ClassificationModule(net=dict(MLP_NET), num_classes=10, optimizer={**SGD, "lr": 0}), "optimizer.lr"),
        (lambda: ClassificationModule(net=dict(MLP_NET), num_classes=10, optimizer={**SGD, "lr": -1}), "positive"),
        (lambda: mlp_module(loss="hinge"), "model.loss='hinge' is unknown"),
        (lambda: BinaryClassificationModule(net={"_target_": "src.models.nets.linear.perceptron",
                                                 "input_shape": [64]}, num_classes=10, optimizer=dict(SGD)),
         "10 classes"),
        (lambda: ClassificationModule(net={**MLP_NET, "activation": "swish"}, num_classes=10, optimizer=dict(SGD)),
         "activation 'swish' is unknown"),
    ],
)
def test_bad_model_config_is_a_user_error(make, match):
    with pytest.raises(UserError, match=match):
        make()


@pytest.mark.parametrize("scheduler", [
    {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 1, "interval": "epoch"},
    {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "_partial_": True, "interval": "epoch",
     "monitor": "val/loss"},
])
def test_configure_optimizers_with_scheduler(scheduler):
    module = mlp_module(scheduler=scheduler)
    config = module.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert config["lr_scheduler"]["interval"] == "epoch"
    assert config["lr_scheduler"]["monitor"] == "val/loss"


@pytest.mark.parametrize("num_classes,absent", [(10, []), (5, [3]), (2, [])])
def test_metrics_from_confusion_match_torchmetrics(num_classes, absent):
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassConfusionMatrix,
        MulticlassF1Score,
        MulticlassPrecision,
        MulticlassRecall,
    )

    from src.models.classifier import metrics_from_confusion

    torch.manual_seed(num_classes)
    target = torch.randint(0, num_classes, (300,))
    scores = torch.randn(300, num_classes) + 2 * torch.nn.functional.one_hot(target, num_classes)
    for cls in absent:  # a class that is neither a target nor a prediction
        keep = target != cls
        target, scores = target[keep], scores[keep]
        scores[:, cls] = -1e9
    matrix = MulticlassConfusionMatrix(num_classes)(scores, target)
    ours = metrics_from_confusion(matrix)
    kw = {"num_classes": num_classes}
    assert ours["acc"] == pytest.approx(MulticlassAccuracy(average="micro", **kw)(scores, target).item(), abs=1e-6)
    assert ours["precision"] == pytest.approx(MulticlassPrecision(average="macro", **kw)(scores, target).item(),
                                              abs=1e-6)
    assert ours["recall"] == pytest.approx(MulticlassRecall(average="macro", **kw)(scores, target).item(), abs=1e-6)
    assert ours["f1"] == pytest.approx(MulticlassF1Score(average="macro", **kw)(scores, target).item(), abs=1e-6)


def test_a_checkpoint_whose_weights_do_not_fit_the_model_is_one_sentence():
    saved = {"state_dict": mlp_module().state_dict()}
    wider = ClassificationModule(net={**MLP_NET, "hidden_sizes": [32]}, num_classes=10, optimizer=dict(SGD))
    point = ResumePoint(Path("last.ckpt"), {}, {}, 0, saved["state_dict"])  # what a resume reads of a checkpoint
    with pytest.raises(UserError, match=r"^the checkpoint's weights do not fit this model \(\d+ tensors differ, e\.g\. "
                                        r"net\.\S+ is \[16, 64\] there, \[32, 64\] here\); use the run's own model "
                                        r"settings, or start a new run without ckpt_path\.$"):
        point.check_weights_fit(wider)
    point.check_weights_fit(mlp_module())  # the same model: nothing to say

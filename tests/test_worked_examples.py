"""The course notes' worked numbers, asserted against the project's own code."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from src.models.losses import MULTICLASS_LOSSES, cross_entropy, log_softmax_nll, softmax_log_nll
from src.models.nets.mlp import MLP


def test_softmax_and_cross_entropy_worked_example():
    """Notes 0: logits [5, 4, 2] -> softmax [0.71, 0.26, 0.04]; target class 0 -> loss -log 0.71 = 0.34.
    (The notes take the log of the rounded 0.71; the exact loss is -log 0.7054 = 0.349.)"""
    logits = torch.tensor([[5.0, 4.0, 2.0]])
    probs = torch.softmax(logits, dim=1)
    assert [round(p, 2) for p in probs[0].tolist()] == [0.71, 0.26, 0.04]
    loss = cross_entropy(logits, torch.tensor([0]))
    assert loss.item() == pytest.approx(-math.log(probs[0, 0].item()), abs=1e-6)
    assert round(-math.log(round(probs[0, 0].item(), 2)), 2) == 0.34
    assert round(loss.item(), 3) == 0.349


def test_three_loss_formulations_give_the_same_loss():
    """Notes 0: CrossEntropyLoss == LogSoftmax + NLLLoss == Softmax + log + NLLLoss."""
    torch.manual_seed(0)
    logits, target = torch.randn(32, 5), torch.randint(0, 5, (32,))
    a, b, c = cross_entropy(logits, target), log_softmax_nll(logits, target), softmax_log_nll(logits, target)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)
    assert set(MULTICLASS_LOSSES) == {"cross_entropy", "log_softmax_nll", "softmax_log_nll"}


def test_nll_loss_worked_example():
    """Notes 0: NLLLoss of [[1,2,3],[4,5,6],[7,8,9],[10,11,12]] with labels [0,1,2,0] = -6.25:
    NLL only picks -output[label], so the log-softmax head is what makes it a cross-entropy."""
    outputs = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]])
    labels = torch.tensor([0, 1, 2, 0])
    assert nn.NLLLoss()(outputs, labels).item() == -6.25
    assert log_softmax_nll(outputs, labels).item() == pytest.approx(F.nll_loss(outputs.log_softmax(1), labels).item())


def test_backpropagation_worked_example():
    """Notes 3: a 2-2-2 sigmoid net without biases, MSE/2, one SGD step of lr 0.5:
    total error 0.02397190 -> 0.02323634."""
    net = MLP(input_shape=[2], num_classes=2, hidden_sizes=[2], activation="sigmoid")
    hidden, output = net.layers[1], net.layers[3]
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor([[0.3, 0.25], [0.4, 0.35]]))
        output.weight.copy_(torch.tensor([[0.45, 0.4], [0.7, 0.6]]))
        hidden.bias.zero_()
        output.bias.zero_()
    hidden.bias.requires_grad_(False)
    output.bias.requires_grad_(False)
    x, target = torch.tensor([[0.1, 0.2]]), torch.tensor([[0.4, 0.6]])

    def total_error():
        return 0.5 * ((torch.sigmoid(net(x)) - target) ** 2).sum()

    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5)
    before = total_error()
    assert round(before.item(), 8) == 0.02397190
    before.backward()
    optimizer.step()
    assert round(total_error().item(), 8) == 0.02323634

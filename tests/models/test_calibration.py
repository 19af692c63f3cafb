"""Calibration metrics and temperature fitting on constructed examples with known answers."""

from __future__ import annotations

import math

import numpy as np
import torch

from src.models.calibration import calibration_metrics, fit_temperature, reliability_bins
from src.models.nets.temperature import TemperatureScaled


def independent_ece(probabilities: np.ndarray, targets: np.ndarray, num_bins: int = 15) -> float:
    """ECE written out from its definition: bins (k/B, (k+1)/B], weighted |accuracy - confidence|."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == targets
    total = 0.0
    for k in range(num_bins):
        low, high = k / num_bins, (k + 1) / num_bins
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def constructed_example() -> tuple[np.ndarray, np.ndarray]:
    """Three classes; confidences chosen in different bins, some predictions wrong."""
    rows = [(0.95, 0), (0.95, 0), (0.95, 1), (0.7, 2), (0.7, 2), (0.7, 0), (0.7, 0), (0.5, 1), (0.5, 2), (0.99, 0)]
    probabilities, targets = [], []
    for confidence, target in rows:
        rest = (1 - confidence) / 2
        probabilities.append([confidence, rest, rest])  # class 0 is always predicted
        targets.append(target)
    return np.array(probabilities), np.array(targets)


def test_ece_equals_an_independent_computation_on_a_constructed_example():
    probabilities, targets = constructed_example()
    # by hand: the bin (14/15, 1] holds 0.95 x 3 and 0.99 (3 of 4 right, mean confidence 0.96), the bin of 0.7
    # four samples (2 right), the bin of 0.5 two (none right)
    by_hand = (4 / 10) * abs(3 / 4 - 0.96) + (4 / 10) * abs(2 / 4 - 0.7) + (2 / 10) * abs(0 - 0.5)
    assert math.isclose(independent_ece(probabilities, targets), by_hand, abs_tol=1e-9)
    scores = calibration_metrics(torch.tensor(probabilities, dtype=torch.float32), torch.tensor(targets))
    assert math.isclose(scores["ece"], by_hand, abs_tol=1e-6)
    nll = -np.mean(np.log(probabilities[np.arange(10), targets]))
    brier = np.mean(((probabilities - np.eye(3)[targets]) ** 2).sum(1))
    assert math.isclose(scores["nll"], nll, rel_tol=1e-5) and math.isclose(scores["brier"], brier, rel_tol=1e-5)


def test_ece_matches_the_independent_computation_on_random_probabilities():
    """Over- and under-confident in turn (accuracy = confidence + 0.3 sin(12 confidence)), so that the gaps of
    neighbouring bins differ in sign and the number and edges of the bins matter."""
    generator = torch.Generator().manual_seed(0)
    n, classes = 4000, 5
    confidence = 0.2 + 0.8 * torch.rand(n, generator=generator)
    probabilities = ((1 - confidence) / (classes - 1)).unsqueeze(1).repeat(1, classes)
    probabilities[:, 0] = confidence
    right = torch.rand(n, generator=generator) < (confidence + 0.3 * torch.sin(12 * confidence)).clamp(0, 1)
    targets = torch.where(right, 0, torch.randint(1, classes, (n,), generator=generator))
    expected = independent_ece(probabilities.double().numpy(), targets.numpy())
    assert math.isclose(calibration_metrics(probabilities, targets)["ece"], expected, abs_tol=1e-5)
    bins = reliability_bins(probabilities, targets)
    weights = bins["count"] / bins["count"].sum()
    assert math.isclose(float((weights * (bins["accuracy"] - bins["confidence"]).abs()).sum()), expected, abs_tol=1e-5)


def test_fitted_temperature_recovers_the_temperature_the_labels_were_drawn_with():
    generator = torch.Generator().manual_seed(1)
    logits = 4 * torch.randn(20000, 4, generator=generator)
    true_temperature = 2.5
    targets = torch.multinomial(torch.softmax(logits / true_temperature, 1), 1, generator=generator).squeeze(1)
    assert abs(fit_temperature(logits, targets) - true_temperature) < 0.1


def test_temperature_scaled_net_divides_logits_and_keeps_every_argmax():
    net = torch.nn.Linear(6, 4)
    scaled = TemperatureScaled(net, 3.0)
    x = torch.randn(50, 6)
    with torch.no_grad():
        assert torch.allclose(scaled(x), net(x) / 3.0)
        assert torch.equal(scaled(x).argmax(1), net(x).argmax(1))
    assert "temperature" in dict(scaled.named_buffers())


def test_a_binary_models_one_logit_is_calibrated_as_two_classes():
    """A one-logit model: the logit z becomes (0, z), whose softmax is (1 - sigmoid(z), sigmoid(z)); the
    temperature fitted on labels drawn at T = 2 is found, and the scaled net gives sigmoid(z / T)."""
    from src.calibrate import logits_of

    class OneLogit(torch.nn.Module):
        device = torch.device("cpu")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 3 * x[:, :1]

    generator = torch.Generator().manual_seed(2)
    x = torch.randn(20000, 2, generator=generator)
    targets = torch.bernoulli(torch.sigmoid(3 * x[:, 0] / 2.0), generator=generator)
    batches = [(x[i:i + 5000], targets[i:i + 5000].view(-1, 1)) for i in range(0, 20000, 5000)]
    logits, labels = logits_of(OneLogit(), batches)
    assert logits.shape == (20000, 2) and torch.equal(labels, targets.long())
    assert torch.allclose(logits.softmax(1)[:, 1], torch.sigmoid(3 * x[:, 0]), atol=1e-6)
    temperature = fit_temperature(logits, labels)
    assert abs(temperature - 2.0) < 0.1
    with torch.no_grad():
        scaled = TemperatureScaled(OneLogit(), temperature)(x)
    assert torch.allclose(torch.sigmoid(scaled[:, 0]), (logits / temperature).softmax(1)[:, 1], atol=1e-6)

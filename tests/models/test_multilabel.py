"""The metrics of several labels per sample equal scikit-learn's on the same predictions, and the thresholds
tuned on a validation split give at least the micro F1 of 0.5 on that split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, hamming_loss

from src.models.multilabel import asymmetric_loss, multilabel_scores, tune_thresholds


def noisy_scores(seed: int, n: int = 400, labels: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets with label frequencies 5 % ... 60 % and probabilities that rank them imperfectly (some samples
    without any label)."""
    g = torch.Generator().manual_seed(seed)
    rates = torch.linspace(0.05, 0.6, labels)
    targets = (torch.rand(n, labels, generator=g) < rates).long()
    logits = 2.5 * (targets.float() - 0.5) + 1.5 * torch.randn(n, labels, generator=g) - 1.0
    return torch.sigmoid(logits), targets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_f1s_hamming_and_exact_match_equal_scikit_learns(seed):
    probs, targets = noisy_scores(seed)
    thresholds = torch.tensor([0.5, 0.3, 0.7, 0.45, 0.5, 0.2])
    ours = {k: float(v) for k, v in multilabel_scores(probs, targets, thresholds).items() if v.ndim == 0}
    y, p = targets.numpy(), probs.numpy()
    predicted = (p > thresholds.numpy()).astype(int)
    assert (predicted.sum(1) == 0).any() and (y.sum(1) == 0).any()  # the empty-set cases are covered
    theirs = {
        "map": average_precision_score(y, p, average="macro"),
        "f1_micro": f1_score(y, predicted, average="micro"),
        "f1_macro": f1_score(y, predicted, average="macro"),
        "f1_samples": f1_score(y, predicted, average="samples", zero_division=0),
        "hamming": hamming_loss(y, predicted),
        "exact_match": accuracy_score(y, predicted),
    }
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key
    per_label = multilabel_scores(probs, targets, thresholds)["f1"].numpy()
    np.testing.assert_allclose(per_label, f1_score(y, predicted, average=None), atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_thresholds_tuned_on_validation_beat_or_equal_one_half_on_micro_f1(seed):
    probs, targets = noisy_scores(seed)
    tuned = tune_thresholds(probs, targets)
    y = targets.numpy()
    at = lambda t: f1_score(y, (probs.numpy() > t.numpy()).astype(int), average="micro")  # noqa: E731
    assert at(tuned) >= at(torch.full((6,), 0.5)) - 1e-12
    assert not torch.equal(tuned, torch.full((6,), 0.5))  # rare labels: a lower threshold wins here


def test_asymmetric_loss_with_no_focusing_and_no_margin_is_binary_cross_entropy_summed_over_labels():
    logits, targets = torch.randn(8, 5), (torch.rand(8, 5) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(1).mean()
    assert asymmetric_loss(logits, targets, 0.0, 0.0, 0.0) == pytest.approx(float(bce), rel=1e-5)
    easy_negatives = torch.full((1, 5), -4.0)  # p = 0.018 < the margin: no loss at all
    assert float(asymmetric_loss(easy_negatives, torch.zeros(1, 5))) == pytest.approx(0.0, abs=1e-7)

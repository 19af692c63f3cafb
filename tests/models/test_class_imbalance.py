"""Class imbalance's pieces against hand computations: the class weights (inverse frequency, effective number
of samples), the long-tailed counts, the focal loss, balanced accuracy (scikit-learn's), the balanced
sampler's draws and its position in an epoch; bad settings end in one sentence."""

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

from src.data.digits import DigitsDataModule
from src.data.imbalance import BalancedBatchLoader, long_tailed_counts
from src.models.class_weights import class_weights
from src.models.classifier import metrics_from_confusion
from src.models.imbalance import focal_loss
from tests.conftest import assert_one_sentence


def test_class_weights_equal_a_hand_computation():
    counts = [500, 100, 20, 0]  # 620 samples, 3 classes present
    assert class_weights(counts, "inv_freq") == pytest.approx([620 / (3 * 500), 620 / (3 * 100), 620 / (3 * 20), 0.0])
    beta = 0.99
    raw = [(1 - beta) / (1 - beta**500), (1 - beta) / (1 - beta**100), (1 - beta) / (1 - beta**20)]
    expected = [w * 3 / sum(raw) for w in raw] + [0.0]
    assert class_weights(counts, "effective_num", beta) == pytest.approx(expected)
    assert expected == pytest.approx([0.3739, 0.5860, 2.0401, 0.0], abs=1e-4)  # the numbers, written out
    assert class_weights(counts, "none") == [1.0] * 4
    assert class_weights([7, 3], "effective_num", 0.0) == pytest.approx([1.0, 1.0])  # beta 0: no reweighting
    # as `pos_weight` of a multi-label set: the positive count of each label
    assert class_weights([30, 10], "inv_freq") == pytest.approx([40 / 60, 40 / 20])


def test_long_tailed_counts_follow_the_exponential_profile():
    got = long_tailed_counts([5400] * 10, 100)
    assert got == [int(5400 * 100 ** (-c / 9)) for c in range(10)]
    assert got[0] == 5400 and got[-1] == 54
    assert long_tailed_counts([30, 50, 40], 10) == [30, int(50 * 10**-0.5), 5]  # never more than a class has


def test_focal_loss_with_gamma_0_is_the_weighted_cross_entropy_and_focuses_on_hard_samples():
    torch.manual_seed(0)
    logits, target, weight = torch.randn(16, 4), torch.randint(0, 4, (16,)), torch.tensor([0.5, 1.0, 2.0, 4.0])
    assert focal_loss(logits, target, 0.0, weight) == pytest.approx(float(F.cross_entropy(logits, target, weight)))
    p = torch.softmax(logits, 1)[torch.arange(16), target]
    by_hand = (-(1 - p) ** 2 * p.log()).mean()
    assert focal_loss(logits, target, 2.0) == pytest.approx(float(by_hand), rel=1e-5)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_balanced_accuracy_is_scikit_learns():
    rng = torch.Generator().manual_seed(1)
    y_true = torch.randint(0, 5, (300,), generator=rng)
    y_pred = torch.where(torch.rand(300, generator=rng) < 0.6, y_true, torch.randint(0, 6, (300,), generator=rng))
    matrix = torch.as_tensor(confusion_matrix(y_true, y_pred, labels=range(6)))  # class 5: predicted, never true
    got = float(metrics_from_confusion(matrix)["balanced_acc"])
    assert got == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-6)


def balanced(rank: int, world: int, steps_per_epoch=None) -> BalancedBatchLoader:
    targets = torch.tensor([0] * 90 + [1] * 9 + [2] * 3)  # 102 samples, ratio 30
    return BalancedBatchLoader(torch.arange(102).view(102, 1), targets, batch_size=8, shuffle=True, seed=5, rank=rank,
                               world_size=world, steps_per_epoch=steps_per_epoch)


def epoch_of(loader, epoch: int) -> list[torch.Tensor]:
    loader.sampler.set_epoch(epoch)
    return [x.flatten() for x, _ in loader]


def test_the_balanced_sampler_draws_classes_uniformly_disjoint_across_ranks_and_resumes_mid_epoch():
    for epoch in range(3):
        ranks = [torch.cat(epoch_of(balanced(r, 2), epoch)) for r in range(2)]
        assert len(ranks[0]) == len(ranks[1]) == 51  # every rank the same number of samples
        assert not set(ranks[0].tolist()) & set(ranks[1].tolist())  # no sample on both ranks
        classes = torch.bincount(torch.tensor([0] * 90 + [1] * 9 + [2] * 3)[torch.cat(ranks)], minlength=3)
        assert classes.tolist() == [34, 34, 34]  # 51 draws per rank: 17 of each class
    one = balanced(0, 1, steps_per_epoch=20)  # longer than a pass: a second pass with a new deal
    full = epoch_of(one, 1)
    assert len(full) == 20
    cut = balanced(0, 1, steps_per_epoch=20)
    cut.sampler.set_epoch(1)
    taken = [x.flatten() for _, (x, _) in zip(range(7), cut)]
    resumed = balanced(0, 1, steps_per_epoch=20)
    resumed.load_state_dict(cut.state_dict())
    rest = epoch_of(resumed, 1)
    assert [t.tolist() for t in taken + rest] == [t.tolist() for t in full]  # none repeated, none skipped
    assert epoch_of(balanced(0, 1), 2)[0].tolist() != epoch_of(balanced(0, 1), 3)[0].tolist()  # a new order each epoch


@pytest.mark.parametrize(("override", "fragments"), [
    ("data.imbalance_ratio=0.5", ("data.imbalance_ratio must be a number of at least 1", "0.5")),
    ("data.sampler=uniform", ("data.sampler must be one of random, balanced", "'uniform'")),
    ("model.class_weights=inverse", ("model.class_weights must be one of none, inv_freq, effective_num",)),
    ("model.class_weights_beta=1", ("model.class_weights_beta must be a number in [0, 1)",)),
    ("model.focal_gamma=-1", ("model.focal_gamma must be a number >= 0",)),
])
def test_bad_imbalance_settings_end_in_one_sentence(cli_in_process, override, fragments):
    needs = {"model.focal_gamma": "model.loss=focal", "model.class_weights_beta": "model.class_weights=effective_num"}
    extra = [needs[key]] if (key := override.split("=")[0]) in needs else []
    assert_one_sentence(cli_in_process("src.train", override, *extra, "logger=none"), *fragments)


def test_effective_number_weights_from_the_long_tailed_split_are_printed_and_logged(cli):
    result = cli("src.train", "data=digits", "data.imbalance_ratio=10", "model.class_weights=effective_num",
                 "model.class_weights_beta=0.99", "trainer.max_epochs=1", "logger=csv", "callbacks=none")
    assert result.returncode == 0, result.output[-3000:]
    full = DigitsDataModule(name="digits", num_classes=10, input_shape=[1, 8, 8])  # the split without the cut
    full.setup()
    before = torch.bincount(full.train_split.targets, minlength=10).tolist()
    counts = [min(n, int(max(before) * 10 ** (-c / 9))) for c, n in enumerate(before)]
    assert f"per class {counts}" in result.output  # the kept counts, logged
    raw = [(1 - 0.99) / (1 - 0.99**n) for n in counts]
    weights = [w * 10 / sum(raw) for w in raw]
    line = next(x for x in result.stdout.splitlines() if x.startswith("Class weights, effective_num (beta=0.99)"))
    assert [int(p.split(": ")[1].split(" ->")[0]) for p in line.split("counts: ")[1].split(", ")] == counts
    (run,) = result.run_dirs()
    logged = (next(run.rglob("hparams.yaml"))).read_text()
    for c in (0, 9):
        assert math.isclose(float(logged.split(f"class_weight/{c}: ")[1].split()[0]), weights[c], rel_tol=1e-6)
    assert result.metrics()["test/balanced_acc"] > 0.5

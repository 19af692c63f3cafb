import pytest
import torch

from src.data.digits import DigitsDataModule
from src.data.iris import IrisDataModule
from src.data.logic_gates import LogicGatesDataModule
from src.errors import UserError

DIGITS = dict(name="digits", num_classes=10, input_shape=[1, 8, 8], batch_size=64)


def test_digits_splits_shapes_and_normalisation():
    dm = DigitsDataModule(test_fraction=0.2, val_fraction=0.1, split_seed=42, **DIGITS)
    dm.setup()
    n_train, n_val, n_test = len(dm.train_split), len(dm.val_split), len(dm.test_split)
    assert n_train + n_val + n_test == 1797
    assert n_test == 360 and n_val == 144
    assert dm.train_split.inputs.dtype == torch.uint8 and int(dm.train_split.inputs.max()) == 16
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    whole = dm.transform(dm.train_split.inputs)
    assert abs(whole.mean().item()) < 1e-4 and abs(whole.std().item() - 1) < 1e-3
    assert set(dm.test_split.targets.tolist()) == set(range(10))  # stratified


def test_digits_split_is_reproducible_and_disjoint():
    a, b = DigitsDataModule(**DIGITS), DigitsDataModule(**DIGITS)
    a.setup(), b.setup()
    assert torch.equal(a.test_split.inputs, b.test_split.inputs)
    train_rows = {tuple(r.flatten().tolist()) for r in a.train_split.inputs}
    test_rows = [tuple(r.flatten().tolist()) for r in a.test_split.inputs]
    assert sum(r in train_rows for r in test_rows) < 10  # only true duplicate images may coincide


def test_iris_uses_the_notes_split_and_features():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    dm = IrisDataModule(
        name="iris", num_classes=3, input_shape=[2], features=["sepal_length", "petal_length"],
        train_size=75, test_size=75, split_seed=123, validate_on_test=True, standardize=False, batch_size=None,
    )
    dm.setup()
    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data[:, [0, 2]], iris.target, train_size=75, test_size=75, random_state=123
    )
    assert torch.allclose(dm.train_split.inputs, torch.tensor(x_train, dtype=torch.float32))
    assert dm.test_split.targets.tolist() == y_test.tolist()
    assert dm.val_split is not None and torch.equal(dm.val_split.targets, dm.test_split.targets)
    (x, y), = list(dm.train_dataloader())  # full batch
    assert x.shape == (75, 2) and y.tolist() == y_train.tolist()
    assert dm.class_names == ["setosa", "versicolor", "virginica"]


def test_iris_input_shape_must_match_features():
    dm = IrisDataModule(name="iris", num_classes=3, input_shape=[4], features=["sepal_length"])
    with pytest.raises(UserError, match="input_shape"):
        dm.setup()


@pytest.mark.parametrize("gate,table", [("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1]), ("nand", [1, 1, 1, 0]),
                                        ("xor", [0, 1, 1, 0])])
def test_logic_gate_truth_tables(gate, table):
    dm = LogicGatesDataModule(name="logic_gates", gate=gate, num_classes=2, input_shape=[2], steps_per_epoch=3)
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    x, y = batches[0]
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and y.tolist() == table


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(batch_size=-5), "batch_size must be a positive integer"),
        (dict(val_fraction=0.0), "val_fraction must be between 0 and 1"),
        (dict(val_fraction=1.5), "val_fraction must be between 0 and 1"),
        (dict(steps_per_epoch=0), "steps_per_epoch"),
    ],
)
def test_bad_data_values_are_one_sentence_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        DigitsDataModule(**{**DIGITS, **kwargs})


def test_unknown_gate_lists_the_gates():
    with pytest.raises(UserError, match=r"choose one of \['and', 'nand', 'or', 'xor'\]"):
        LogicGatesDataModule(name="g", gate="nor", num_classes=2, input_shape=[2])


def test_dataloader_path_serves_the_same_samples_and_values_as_the_tensor_path():
    fast = DigitsDataModule(**DIGITS)
    slow = DigitsDataModule(**DIGITS, loader="dataloader", num_workers=0)
    fast.setup(), slow.setup()
    for a, b in zip(fast.val_dataloader(), slow.val_dataloader()):  # unshuffled: identical batches
        assert torch.allclose(a[0], b[0], atol=1e-6) and torch.equal(a[1], b[1])
    loader = slow.train_dataloader()
    assert isinstance(loader, torch.utils.data.DataLoader) and len(loader) == len(fast.train_dataloader())
    seen = torch.cat([y for _, y in loader])
    assert sorted(seen.tolist()) == sorted(fast.train_split.targets.tolist())  # every sample once per epoch


def test_dataloader_path_rejects_tensor_only_options():
    with pytest.raises(UserError, match="steps_per_epoch needs data.loader=tensor"):
        DigitsDataModule(**DIGITS, loader="dataloader", steps_per_epoch=4)
    with pytest.raises(UserError, match="data.loader must be 'tensor'"):
        DigitsDataModule(**DIGITS, loader="pil")

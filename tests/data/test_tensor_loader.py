import torch

from src.data.batch_transforms import Normalize
from src.data.tensor_loader import TensorBatchLoader


def make(n=10, **kw):
    x = torch.arange(n, dtype=torch.float32).view(n, 1)
    return TensorBatchLoader(x, torch.arange(n), **kw)


def test_one_pass_covers_every_sample_once_in_a_shuffled_order():
    loader = make(10, batch_size=3, shuffle=True, seed=1)
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert seen.tolist() != list(range(10))
    for x, y in batches:  # inputs and targets stay paired
        assert x.view(-1).long().tolist() == y.tolist()


def test_order_depends_only_on_seed_and_epoch():
    a, b = make(50, batch_size=8, shuffle=True, seed=3), make(50, batch_size=8, shuffle=True, seed=3)
    first_a, first_b = [y for _, y in a], [y for _, y in b]
    assert all(torch.equal(p, q) for p, q in zip(first_a, first_b))
    second_a = [y for _, y in a]
    assert not all(torch.equal(p, q) for p, q in zip(first_a, second_a))
    b.set_epoch(1)
    assert all(torch.equal(p, q) for p, q in zip(second_a, [y for _, y in b]))


def test_full_batch_is_the_whole_split_in_order():
    loader = make(7, batch_size=None, shuffle=True)
    (x, y), = list(loader)
    assert y.tolist() == list(range(7))


def test_steps_per_epoch_repeats_passes():
    loader = make(4, batch_size=None, steps_per_epoch=25)
    batches = list(loader)
    assert len(loader) == len(batches) == 25
    assert all(y.tolist() == [0, 1, 2, 3] for _, y in batches)
    loader = make(10, batch_size=4, shuffle=True, steps_per_epoch=5)  # passes of 3 batches, cut at 5
    assert [len(y) for _, y in loader] == [4, 4, 2, 4, 4]


def test_drop_last_and_transform():
    loader = make(10, batch_size=4, drop_last=True, transform=lambda x: x * 2)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4]
    assert batches[1][0].view(-1).tolist() == [8.0, 10.0, 12.0, 14.0]


def test_normalize_maps_pixels_like_torchvision():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 1, 3).repeat(2, 3, 1, 1)
    norm = Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.5])
    expected = (x.float() / 255 - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.25, 0.5]
    ).view(1, 3, 1, 1)
    assert torch.allclose(norm(x), expected, atol=1e-5)




def test_distributed_shares_are_disjoint_equal_for_training_and_complete_for_evaluation():
    x, y = torch.arange(11, dtype=torch.float32).view(11, 1), torch.arange(11)
    train = [TensorBatchLoader(x, y, batch_size=2, shuffle=True, seed=3, rank=r, world_size=2) for r in (0, 1)]
    seen = [torch.cat([b for _, b in loader]).tolist() for loader in train]
    assert len(seen[0]) == len(seen[1]) == 5 and not set(seen[0]) & set(seen[1])  # same step count, no overlap
    assert len(train[0]) == len(train[1])
    evaluation = [TensorBatchLoader(x, y, batch_size=4, rank=r, world_size=2) for r in (0, 1)]
    covered = sorted(torch.cat([b for loader in evaluation for _, b in loader]).tolist())
    assert covered == list(range(11))


def test_lightning_sets_the_epoch_through_the_sampler_attribute():
    from lightning.fabric.utilities.data import _set_sampler_epoch

    loader = make(20, batch_size=5, shuffle=True, seed=1)
    epoch0 = [y.tolist() for _, y in loader]
    _set_sampler_epoch(loader, 0)  # what Lightning's fit loop does at the start of every epoch
    assert [y.tolist() for _, y in loader] == epoch0  # a resumed run replays the same epoch order

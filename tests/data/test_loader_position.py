"""A loader's position in its epoch survives a checkpoint: after `load_state_dict(state_dict())` a new
loader serves exactly the batches the first had not handed out yet (the whole-tensor loader and the
per-sample DataLoader; grouped in K steps per call: tests/models/test_multi_step.py)."""

import pytest
import torch

from src.data.sample_loader import sample_loader
from src.data.tensor_loader import TensorBatchLoader


def tensor_loader() -> TensorBatchLoader:
    x = torch.arange(50, dtype=torch.float32).view(50, 1)
    return TensorBatchLoader(x, torch.arange(50), batch_size=8, shuffle=True, seed=3)


def dataloader():
    x = torch.arange(50, dtype=torch.float32).view(50, 1)
    return sample_loader(x, torch.arange(50), batch_size=8, shuffle=True, num_workers=0, seed=3)


def set_epoch(loader, epoch: int) -> None:
    """What Lightning does before every epoch (`_set_sampler_epoch`)."""
    loader.sampler.set_epoch(epoch)


def batches(item) -> list:
    """The (x, y) batches of one item a loader hands out: one batch, or a group of K with steps_per_call=K."""
    return item if isinstance(item[0], (tuple, list)) else [item]


def served(loader) -> list[list[int]]:
    return [y.tolist() for item in loader for _, y in batches(item)]


def targets(loader, epoch: int) -> list[list[int]]:
    """Epoch `epoch`'s batches, as their targets."""
    set_epoch(loader, epoch)
    return served(loader)


@pytest.mark.parametrize("make", [tensor_loader, dataloader], ids=["tensor", "dataloader"])
def test_a_restored_loader_serves_the_rest_of_the_epoch(make):
    reference = make()
    epoch_1, epoch_2 = targets(reference, 1), targets(reference, 2)
    assert epoch_1 != epoch_2 and len(epoch_1) == 7

    first = make()
    set_epoch(first, 1)
    iterator = iter(first)
    taken = [next(iterator) for _ in range(2)]  # 2 calls: 2 batches, or 6 with 3 per call
    state = first.state_dict()
    n_taken = sum(len(batches(t)) for t in taken)
    assert state == {"epoch": 1, "batches_taken": n_taken}

    resumed = make()
    resumed.load_state_dict(state)
    set_epoch(resumed, 1)
    assert served(resumed) == epoch_1[n_taken:]  # none repeated, none skipped
    assert targets(resumed, 2) == epoch_2  # the next epoch is whole again


@pytest.mark.parametrize("make", [tensor_loader, dataloader], ids=["tensor", "dataloader"])
def test_a_position_at_the_end_of_an_epoch_resumes_with_the_next_whole_epoch(make):
    finished = make()
    epoch_1 = targets(finished, 1)
    assert finished.state_dict() == {"epoch": 1, "batches_taken": len(epoch_1)}
    resumed = make()
    resumed.load_state_dict(finished.state_dict())
    assert targets(resumed, 2) == targets(make(), 2)


def test_a_position_is_kept_only_for_its_own_epoch():
    first = tensor_loader()
    set_epoch(first, 4)
    next(iter(first))
    resumed = tensor_loader()
    resumed.load_state_dict(first.state_dict())
    assert targets(resumed, 5) == targets(tensor_loader(), 5)  # another epoch: served whole

"""`steps_per_call=K > 1` (src/models/multi_step.py): the training batches in groups of K, the same batches in
the same order as one at a time, and a grouped loader's position survives a checkpoint."""

import pytest
import torch

from src.data.tensor_loader import TensorBatchLoader
from src.errors import UserError
from src.models.multi_step import StepGroups, check_setting
from tests.data.test_loader_position import batches, served, set_epoch, targets


def make(n=10, **kw):
    x = torch.arange(n, dtype=torch.float32).view(n, 1)
    return TensorBatchLoader(x, torch.arange(n), **kw)

def test_steps_per_call_groups_the_same_batches_in_the_same_order():
    single = make(10, batch_size=3, shuffle=True, seed=5, steps_per_epoch=7)
    grouped = StepGroups(make(10, batch_size=3, shuffle=True, seed=5, steps_per_epoch=7), 3)
    flat = [y for group in grouped for _, y in group]
    assert len(grouped) == 3
    assert [len(g) for g in StepGroups(make(10, batch_size=3, steps_per_epoch=7), 3)] == [3, 3, 1]
    assert [y.tolist() for y in flat] == [y.tolist() for _, y in single]


def test_limit_steps_cuts_every_epoch_to_that_many_batches_whatever_the_grouping():
    x, y = torch.arange(100).float().unsqueeze(1), torch.arange(100)
    plain = TensorBatchLoader(x, y, batch_size=10, shuffle=True, seed=3)
    grouped = StepGroups(TensorBatchLoader(x, y, batch_size=10, shuffle=True, seed=3, limit_steps=6), 4)
    assert len(grouped) == 2  # ceil(6 / 4) calls: 4 + 2 batches
    batches = [b for group in grouped for b in group]
    assert [torch.equal(a[1], b[1]) for a, b in zip(plain, batches)] == [True] * 6 and len(batches) == 6
    assert len(TensorBatchLoader(x, y, batch_size=10, limit_steps=50)) == 10  # never more than one pass



def test_a_restored_grouped_loader_serves_the_rest_of_the_epoch():
    def grouped():
        x = torch.arange(50, dtype=torch.float32).view(50, 1)
        return StepGroups(TensorBatchLoader(x, torch.arange(50), batch_size=8, shuffle=True, seed=3), 3)

    epoch_1 = targets(grouped(), 1)
    first = grouped()
    set_epoch(first, 1)
    iterator = iter(first)
    taken = [next(iterator) for _ in range(2)]  # 2 calls of 3 batches
    state = first.state_dict()
    n_taken = sum(len(batches(t)) for t in taken)
    assert n_taken == 6 and state == {"epoch": 1, "batches_taken": 6}
    resumed = grouped()
    resumed.load_state_dict(state)
    set_epoch(resumed, 1)
    assert served(resumed) == epoch_1[n_taken:]  # none repeated, none skipped


def test_k_steps_need_whole_tensor_batches():
    with pytest.raises(UserError, match=r"steps_per_call=4 groups the batches of data.loader=tensor; set "
                                        r"steps_per_call=1 to use the DataLoader\.$"):
        check_setting({"steps_per_call": 4, "data": {"loader": "dataloader"}})
    with pytest.raises(UserError, match=r"steps_per_call must be a positive integer"):
        check_setting({"steps_per_call": 0, "data": {"loader": "tensor"}})

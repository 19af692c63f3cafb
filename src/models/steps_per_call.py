"""`steps_per_call=K`: K optimizer steps in one Lightning training step. Everything that differs from
the default K = 1 lives here (and, on the data side, in `TensorBatchLoader`'s grouping).

`steps_per_call` is a training setting (conf/train.yaml) that the data and model configs receive by
interpolation, so the data module and the module each get it as a constructor argument; setting
`data.steps_per_call` or `model.steps_per_call` on their own is refused (`check_setting`).

K = 1 (the default) is Lightning's automatic optimisation: `training_step` receives one `(x, y)` batch,
takes one optimizer step, and every Lightning feature counts steps.

K > 1 is for tiny many-step recipes (the course notes' iris, gate and XOR runs take 10,000 full-batch steps of
a few parameters, where Lightning's work per step costs more than the step itself). The data module
hands `training_step` a list of K `(x, y)` batches, the same batches in the same order as K = 1, and
the module takes K optimizer steps with Lightning's manual optimisation (`manual_backward`,
`optimizer.step()`, `lr_schedulers()`): the same updates as K = 1 (tested), with Lightning's per-step
work paid once per K steps. The mode is fixed when the module is built (its `steps_per_call`
argument), so Lightning's own configuration check sees it.

Which hooks fire how often with K > 1:
- per optimizer step, as with K = 1: `on_before_backward`, `on_after_backward`,
  `on_before_optimizer_step` (callbacks and module), the optimizer's own step hooks (`EMA`,
  `StepHistory`), `trainer.global_step`, `trainer.max_steps`, per-step lr schedules;
- per call of K steps: `on_train_batch_start` / `on_train_batch_end` (their `batch` is the list of
  K batches, `batch_idx` counts calls), the progress bar, `trainer.log_every_n_steps`, an integer
  `trainer.val_check_interval`, and the x-axis (step) of values logged with `self.log`;
- never: `on_before_zero_grad` (Lightning calls it in automatic optimisation only).
An integer `trainer.limit_train_batches=N` still means N optimizer steps (the loader cuts the epoch).
Not available with K > 1 (Lightning's automatic-optimisation features; a run stops with one
sentence): `trainer.gradient_clip_val`, `trainer.accumulate_grad_batches`, `data.loader=dataloader`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch

from src.errors import require

Batch = tuple[torch.Tensor, torch.Tensor]


# Trainer features of Lightning's automatic optimisation, with the value that leaves each off.
AUTOMATIC_ONLY = {"gradient_clip_val": (None, 0, 0.0), "accumulate_grad_batches": (None, 1)}


def check_setting(run_config: Mapping[str, Any]) -> None:
    """Refuse, in one sentence and before anything is built, what contradicts the run's `steps_per_call`:
    a value given to the data or model config instead of the training setting, or a Trainer feature of
    automatic optimisation with K > 1 (Lightning would refuse it at fit)."""
    k = run_config.get("steps_per_call", 1)
    require(isinstance(k, int) and not isinstance(k, bool) and k > 0,
            f"steps_per_call must be a positive integer (1 = one optimizer step per Lightning step), got {k!r}.")
    for group in ("data", "model"):
        given = (run_config.get(group) or {}).get("steps_per_call", k)
        require(given == k, f"{group}.steps_per_call is the training setting steps_per_call, which the data and "
                            f"model configs receive; set steps_per_call={given} instead.")
    trainer = run_config.get("trainer") or {}
    for key, off in AUTOMATIC_ONLY.items():
        require(k == 1 or trainer.get(key) in off,
                f"trainer.{key} needs one optimizer step per Lightning step, but steps_per_call > 1 takes several in "
                f"each (Lightning's manual optimisation); set steps_per_call=1 or drop trainer.{key}.")


def steps_per_call(module: L.LightningModule | None) -> int:
    """K of a module: its `steps_per_call` hyper-parameter (1 for a module without one)."""
    if module is None:
        return 1
    return int(module.hparams.get("steps_per_call", 1) or 1)


def optimizer_steps_per_epoch(trainer: L.Trainer) -> int | float:
    """Optimizer steps in one training epoch: Lightning counts `training_step` calls (batches), each of
    which is K steps with K > 1 (the loader's last call of an epoch may hold fewer)."""
    calls = trainer.num_training_batches
    if not isinstance(calls, int):
        return calls  # an iterable without a length: inf
    k = steps_per_call(trainer.lightning_module)
    if k == 1:
        return math.ceil(calls / max(trainer.accumulate_grad_batches, 1))
    per_epoch = calls * k
    return min(per_epoch, getattr(trainer.train_dataloader, "steps_per_epoch", per_epoch))


def planned_optimizer_steps(trainer: L.Trainer) -> int | float:
    """Optimizer steps of the whole run (e.g. OneCycleLR's `total_steps`): Lightning's own estimate,
    whose epochs are counted in optimizer steps when K > 1."""
    estimated = trainer.estimated_stepping_batches  # also sets up the training data
    if steps_per_call(trainer.lightning_module) == 1 or trainer.max_epochs == -1:
        return estimated  # with K > 1 and no epoch limit it is max_steps, already in optimizer steps
    total = optimizer_steps_per_epoch(trainer) * max(trainer.max_epochs, 1)
    return min(total, trainer.max_steps) if trainer.max_steps != -1 else total


def take_steps(module: L.LightningModule, batches: Sequence[Batch],
               loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], step_scheduler: bool) -> None:
    """One optimizer step per batch of `batches` (stopping at `trainer.max_steps`), through Lightning's
    manual optimisation: mixed precision, distributed gradient sync and the step hooks as in automatic
    optimisation; `step_scheduler` steps a per-step lr schedule after each step."""
    optimizer = module.optimizers()
    scheduler = module.lr_schedulers() if step_scheduler else None
    trainer = module.trainer
    if trainer.max_steps > 0:  # the run's last call may hold more batches than steps are left
        batches = batches[: max(trainer.max_steps - trainer.global_step, 0)]
    for x, y in batches:
        loss = loss_of(x, y)
        optimizer.zero_grad(set_to_none=True)
        module.manual_backward(loss)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def step_epoch_scheduler(module: L.LightningModule, monitor: str) -> None:
    """A per-epoch lr schedule at the end of a training epoch (after its validation), as Lightning
    steps it in automatic optimisation; `ReduceLROnPlateau` reads the `monitor` metric."""
    scheduler: Any = module.lr_schedulers()
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        value = module.trainer.callback_metrics.get(monitor)
        if value is not None:
            scheduler.step(value)
    else:
        scheduler.step()

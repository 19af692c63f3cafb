"""`steps_per_call=K > 1`: K optimizer steps in one Lightning training step, for tiny many-step recipes.

The course notes' iris, gate and XOR runs take 10,000 full-batch steps of a few parameters, where
Lightning's work per step costs more than the step itself. With K > 1 the run's data module hands
`training_step` a list of K consecutive `(x, y)` batches (the same batches in the same order as K = 1),
and the module takes K optimizer steps with Lightning's manual optimisation (`manual_backward`,
`optimizer.step()`, `lr_schedulers()`): the same updates as K = 1 (tested), with Lightning's per-step
work paid once per K steps. K is a training setting (conf/train.yaml); this file loads only when it is
not 1: `multi_step_class` gives the configured module and data module classes a K-step variant.

Which hooks fire how often with K > 1:
- per optimizer step, as with K = 1: `on_before_backward`, `on_after_backward`,
  `on_before_optimizer_step` (callbacks and module), the optimizer's own step hooks (`EMA`,
  `StepHistory`), `trainer.global_step`, `trainer.max_steps`, per-step lr schedules;
- per call of K steps: `on_train_batch_start` / `on_train_batch_end` (their `batch` is the list of
  K batches, `batch_idx` counts calls), the progress bar, `trainer.log_every_n_steps`, an integer
  `trainer.val_check_interval`, and the x-axis (step) of values logged with `self.log`;
- never: `on_before_zero_grad` (Lightning calls it in automatic optimisation only).
An integer `trainer.limit_train_batches=N` still means N optimizer steps (the loader cuts the epoch).
Not available with K > 1 (a run stops with one sentence): `trainer.gradient_clip_val`,
`trainer.accumulate_grad_batches`, `data.loader=dataloader`, data sets streamed from files, and
model families with their own training step hooks (the speed run).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
import torch

from src.errors import require
from src.models.classifier import ClassificationModule

Batch = tuple[torch.Tensor, torch.Tensor]
# Trainer features of Lightning's automatic optimisation, with the value that leaves each off.
AUTOMATIC_ONLY = {"gradient_clip_val": (None, 0, 0.0), "accumulate_grad_batches": (None, 1)}
STEP_HOOKS = ("training_step", "on_train_batch_start", "on_train_batch_end")


def check_setting(run_config: Mapping[str, Any]) -> None:
    """Refuse, in one sentence and before anything is built, a `steps_per_call` that is not a positive
    integer, or what contradicts K > 1: a Trainer feature of automatic optimisation, or the per-sample loader."""
    k = run_config.get("steps_per_call", 1)
    require(isinstance(k, int) and not isinstance(k, bool) and k > 0,
            f"steps_per_call must be a positive integer (1 = one optimizer step per Lightning step), got {k!r}.")
    trainer = run_config.get("trainer") or {}
    for key, off in AUTOMATIC_ONLY.items():
        require(k == 1 or trainer.get(key) in off,
                f"trainer.{key} needs one optimizer step per Lightning step, but steps_per_call > 1 takes several in "
                f"each (Lightning's manual optimisation); set steps_per_call=1 or drop trainer.{key}.")
    loader = (run_config.get("data") or {}).get("loader")
    require(k == 1 or loader == "tensor", f"steps_per_call={k} groups the batches of data.loader=tensor; set "
                                          "steps_per_call=1 to use " + ("the DataLoader." if loader == "dataloader"
                                                                        else "a data set streamed from files."))


@functools.cache
def multi_step_class(base: type, k: int) -> type:
    """`base` (a `ClassificationModule` or an in-memory data module class) taking / handing out K steps per
    call. It keeps the base's name, so checkpoints store its hyper-parameters and data state as the base's."""
    if issubclass(base, L.LightningModule):
        ours = [hook for hook in STEP_HOOKS if getattr(base, hook) is not getattr(ClassificationModule, hook)]
        require(issubclass(base, ClassificationModule) and not ours,
                f"{base.__name__} has its own training step ({', '.join(ours) or 'no ClassificationModule'}), so it "
                f"cannot take several optimizer steps per call; set steps_per_call=1.")
        mixin: type = MultiStepTraining
    else:  # check_setting has refused data modules without whole-tensor batches (data.loader=tensor)
        mixin = GroupedTrainBatches
    return type(base.__name__, (mixin, base), {"steps_per_call": k, "__qualname__": base.__qualname__,
                                               "__module__": base.__module__})


class StepGroups:
    """A training loader's batches in lists of K consecutive ones, one list per `training_step` call. Its
    state (for a mid-epoch resume) and epoch (`sampler.set_epoch`) are the wrapped loader's."""

    def __init__(self, loader: Any, k: int) -> None:
        self.loader, self.k = loader, k
        self.sampler, self.batch_sampler = loader.sampler, None

    @property
    def steps_per_epoch(self) -> int:
        return self.loader.steps_per_epoch

    def __len__(self) -> int:
        return -(-len(self.loader) // self.k)

    def state_dict(self) -> dict[str, int]:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.loader.load_state_dict(state)

    def __iter__(self) -> Iterator[list[Batch]]:
        group: list[Batch] = []
        for batch in self.loader:
            group.append(batch)
            if len(group) == self.k:
                yield group
                group = []
        if group:
            yield group


class GroupedTrainBatches:
    """Data-module side: the training batches in groups of `steps_per_call`."""

    steps_per_call: int

    def train_dataloader(self) -> StepGroups:
        return StepGroups(super().train_dataloader(), self.steps_per_call)


class MultiStepTraining:
    """Module side: `training_step` takes one optimizer step per batch of its list (stopping at
    `trainer.max_steps`), through Lightning's manual optimisation: mixed precision, distributed gradient
    sync and the step hooks as in automatic optimisation; per-step and per-epoch lr schedules as Lightning
    steps them."""

    steps_per_call: int

    @property
    def automatic_optimization(self) -> bool:  # fixed before Lightning checks the run's configuration
        return False

    def _schedule_interval(self) -> str | None:
        from src.models.schedulers import scheduler_interval
        return scheduler_interval(self.hparams.scheduler) if self.uses_scheduler else None

    def training_step(self, batches: list[Batch], batch_idx: int) -> None:
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers() if self._schedule_interval() == "step" else None
        if self.trainer.max_steps > 0:  # the run's last call may hold more batches than steps are left
            batches = batches[: max(self.trainer.max_steps - self.trainer.global_step, 0)]
        for x, y in batches:
            loss = self.step_loss(x, y)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self._schedule_interval() != "epoch":
            return
        scheduler: Any = self.lr_schedulers()  # ReduceLROnPlateau reads its monitor, as Lightning steps it
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            value = self.trainer.callback_metrics.get((self.hparams.scheduler or {}).get("monitor", "val/loss"))
            if value is not None:
                scheduler.step(value)
        else:
            scheduler.step()

    def optimizer_steps_per_epoch(self) -> int | float:
        """Lightning counts calls; each is K steps (the loader's last call of an epoch may hold fewer)."""
        calls = self.trainer.num_training_batches
        if not isinstance(calls, int):
            return calls  # an iterable without a length: inf
        per_epoch = calls * self.steps_per_call
        return min(per_epoch, getattr(self.trainer.train_dataloader, "steps_per_epoch", per_epoch))

    def planned_optimizer_steps(self) -> int | float:
        self.trainer.estimated_stepping_batches  # noqa: B018  (sets up the training data, as Lightning's estimate does)
        if self.trainer.max_epochs == -1:
            return self.trainer.max_steps  # already in optimizer steps
        total = self.optimizer_steps_per_epoch() * max(self.trainer.max_epochs, 1)
        return min(total, self.trainer.max_steps) if self.trainer.max_steps != -1 else total

"""The Lightning internals that src/lightning_internals.py relies on, checked against the installed
Lightning: when Lightning changes, these fail and say which function to re-check."""

from __future__ import annotations

import signal

import lightning as L
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.exceptions import SIGTERMException

from src import lightning_internals as internals

RECHECK = ("Lightning {found} is installed, but src/lightning_internals.py was checked against "
           "{pinned}: re-check each function there against the new release, then update CHECKED_LIGHTNING_VERSION.")


def test_the_installed_lightning_is_the_one_the_internals_were_checked_against():
    found, pinned = L.__version__, internals.CHECKED_LIGHTNING_VERSION
    assert found == pinned, RECHECK.format(found=found, pinned=pinned)


def test_ddp_keyword_arguments_are_read_from_the_strategy():
    assert hasattr(DDPStrategy(), "_ddp_kwargs"), "no DDPStrategy._ddp_kwargs: re-check ddp_finds_unused_parameters"
    assert internals.ddp_finds_unused_parameters(DDPStrategy(find_unused_parameters=True))
    assert not internals.ddp_finds_unused_parameters(DDPStrategy())


def fit(tmp_path, module: L.LightningModule, callbacks=(), max_epochs: int = 1) -> L.Trainer:
    trainer = L.Trainer(default_root_dir=tmp_path, max_epochs=max_epochs, limit_train_batches=4, limit_val_batches=2,
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, callbacks=list(callbacks))
    trainer.fit(module)
    return trainer


class Probe(L.Callback):
    def __init__(self, action):
        self.action, self.seen = action, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append(self.action(trainer, pl_module, batch_idx))


def test_a_module_knows_its_trainer_or_none(tmp_path):
    module = BoringModel()
    assert internals.attached_trainer(module) is None
    probe = Probe(lambda trainer, pl_module, _: internals.attached_trainer(pl_module) is trainer)
    fit(tmp_path, module, [probe])
    assert probe.seen and all(probe.seen)


def test_a_stop_request_ends_fit_at_the_next_batch_boundary_with_lightnings_sigterm_exception(tmp_path):
    probe = Probe(lambda trainer, pl_module, batch_idx: (batch_idx, internals.stop_at_next_batch_boundary(None)))
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SIGTERMException):
        fit(tmp_path, BoringModel(), [probe])
    assert probe.seen == [(0, True)], "Lightning's SIGTERM handler did not stop at the next batch boundary"
    assert signal.getsignal(signal.SIGTERM) == previous
    if not callable(previous):  # outside a run there is no handler of Lightning's to call
        assert internals.stop_at_next_batch_boundary(None) is False


def test_the_checkpoints_loop_counters_have_the_layout_read_and_rewritten(tmp_path):
    trainer = fit(tmp_path, BoringModel(), max_epochs=2)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    fit_loop = checkpoint["loops"]["fit_loop"]
    assert {"processed", "completed"} <= fit_loop["epoch_progress"]["total"].keys()
    assert internals.epochs_trained(checkpoint) == 2
    progress = fit_loop["epoch_loop.val_loop.batch_progress"]
    assert {"current", "total", "is_last_batch"} <= progress.keys()
    total_before = dict(progress["total"])
    internals.restart_validation_pass(checkpoint)
    assert progress["current"] == {"ready": 1, "started": 1, "processed": 0, "completed": 0}
    done = total_before["completed"] - 2  # the pass in progress had done 2 batches
    assert progress["total"] == {"ready": done + 1, "started": done + 1, "processed": done, "completed": done}
    assert internals.epochs_trained({"epoch": 3}) == 3  # a checkpoint without loop counters

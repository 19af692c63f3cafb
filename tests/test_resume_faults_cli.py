"""Fault injection through the CLI: SIGTERM at an epoch's end, between two training batches and during
validation, each resumed with the command the run printed and with the original command plus
`ckpt_path`; every resumed run ends with the uninterrupted run's metrics (CPU, fixed seed,
deterministic mode, dropout and noise augmentation drawing from the restored random state)."""

import json
import re
import shutil

import pytest

from tests.conftest import assert_one_sentence

# Early stopping and checkpoints stay on (the defaults): resuming must give them their metrics.
RUN = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none", "model.net.dropout=0.2",
       "augment=noise", "trainer.deterministic=true", "seed=3", "trainer.max_epochs=3"]
# digits: 21 training batches and 3 validation batches per epoch.
MOMENTS = ["epoch_end@0", "train_batch@1:5", "val_batch@1:1"]
KEYS = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc", "test/f1")


def metrics_of(run) -> dict:
    return json.loads((run / "metrics.json").read_text())["metrics"]


def assert_same_metrics(got: dict, expected: dict) -> None:
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


def test_sigterm_at_three_moments_then_resume_gives_the_uninterrupted_metrics(cli, tmp_path):
    straight = cli("src.train", *RUN, new_interpreter=True)  # the others are forked: another string-hash seed
    assert straight.returncode == 0, straight.output[-2000:]
    (straight_run,) = straight.run_dirs()
    expected = metrics_of(straight_run)

    faults = ["+callbacks.signal._target_=tests.faults.SignalAt", f"+callbacks.signal.moments=[{','.join(MOMENTS)}]",
              f"+callbacks.signal.done_dir={tmp_path / 'signals_sent'}"]
    original = [*RUN, *faults]
    result = cli("src.train", *original)
    saved, wording = [], ["in epoch 1, step 21", "in epoch 1, step 27", "during validation of epoch 1, step 42"]
    for moment, words in zip(MOMENTS, wording):  # each run stops at the next moment; its printed command resumes it
        assert result.returncode == 143, (moment, result.output[-2000:])
        assert "Traceback" not in result.output, result.output[-3000:]
        assert f"Interrupted {words}: saved " in result.stdout, result.stdout[-2000:]
        (command,) = re.findall(r"^Resume with: python -m src\.train (ckpt_path=\S+)$", result.stdout, re.M)
        checkpoint = tmp_path / f"after_{moment.replace('@', '_').replace(':', '_')}.ckpt"
        shutil.copyfile(command.split("=", 1)[1], checkpoint)  # kept for the resumptions below
        saved.append(checkpoint)
        result = cli("src.train", command)
    assert result.returncode == 0, result.output[-3000:]
    (run,) = [r for r in result.run_dirs() if r != straight_run and (r / "checkpoints").is_dir()]
    assert f"logs and checkpoints continue in {run}" in result.stdout
    assert_same_metrics(metrics_of(run), expected)

    for checkpoint in saved:  # a cluster requeue: the original command again, plus ckpt_path
        resumed = cli("src.train", *original, f"ckpt_path={checkpoint}")
        assert resumed.returncode == 0, (checkpoint.name, resumed.output[-3000:])
        assert f"Resuming from {checkpoint}: logs and checkpoints continue in {run}" in resumed.stdout
        assert_same_metrics(metrics_of(run), expected)
    record = json.loads((run / "metrics.json").read_text())
    assert record["overrides"] == original  # the run's own overrides, not `ckpt_path=...`

    # the same checkpoint with other layers: one sentence naming a tensor that differs, before any step
    wider = cli("src.train", *original, "model.net.hidden_sizes=[32]", f"ckpt_path={saved[0]}")
    assert_one_sentence(wider, "the checkpoint's weights do not fit this model", "is [128, 64] there, [32, 64] here")

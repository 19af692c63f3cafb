"""`data=image_folder data.loader=dataloader` (files decoded per sample) stopped by SIGTERM in the middle of
a training epoch, then resumed with the command the run printed: the resumed run ends with the
uninterrupted run's metrics, without worker processes and with two (the batches of an epoch come in an
order that depends only on the seed and the epoch, and the loader's position is in the checkpoint)."""

import json
import re
from pathlib import Path

import pytest

from tests.own_data import fashion_test_split, needs_fashion_mnist, write_fashion_pngs

IMAGES = 200  # Fashion-MNIST test images as PNG class folders: 162 training images, 11 batches per epoch
RUN = ["data=image_folder", "data.loader=dataloader", "data.channels=1", "data.image_size=28", "data.mean=[0.2860]",
       "data.std=[0.3530]", "data.batch_size=16", "model=mlp", "model.net.hidden_sizes=[32]", "model.net.dropout=0.2",
       "callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none", "trainer.deterministic=true",
       "seed=3", "trainer.max_epochs=2"]
KEYS = ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc")


def metrics_of(run) -> dict:
    return json.loads((run / "metrics.json").read_text())["metrics"]


@needs_fashion_mnist
def test_sigterm_mid_epoch_on_the_per_sample_path_resumes_to_the_uninterrupted_metrics(cli, tmp_path):
    images, labels = fashion_test_split()
    write_fashion_pngs(tmp_path / "pngs", images[:IMAGES], labels[:IMAGES])
    run = [f"data.root={tmp_path / 'pngs'}", *RUN]
    straight = cli("src.train", *run, "data.num_workers=0", new_interpreter=True)  # others forked: another hash seed
    assert straight.returncode == 0, straight.output[-3000:]
    (straight_run,) = straight.run_dirs()
    expected = metrics_of(straight_run)

    for workers in (0, 2):
        signal = ["+callbacks.signal._target_=tests.faults.SignalAt", "+callbacks.signal.moments=[train_batch@1:4]",
                  f"+callbacks.signal.done_dir={tmp_path / f'signals_{workers}'}"]
        stopped = cli("src.train", *run, f"data.num_workers={workers}", *signal)
        assert stopped.returncode == 143, (workers, stopped.output[-3000:])
        assert "Interrupted in epoch 1, step 16: saved " in stopped.stdout, stopped.stdout[-2000:]
        (command,) = re.findall(r"^Resume with: python -m src\.train (ckpt_path=\S+)$", stopped.stdout, re.M)
        resumed = cli("src.train", command)
        assert resumed.returncode == 0, (workers, resumed.output[-3000:])
        (folder,) = re.findall(r"logs and checkpoints continue in (\S+)", resumed.stdout)
        got = metrics_of(Path(folder))
        for key in KEYS:
            assert got[key] == pytest.approx(expected[key], abs=1e-6), (workers, key)

"""The balanced sampler through the CLI: under `trainer=ddp_sim` (two processes) every rank draws other
samples, as many as the other, and the classes of an epoch are drawn uniformly from a long-tailed split;
SIGTERM in the middle of an epoch, then the printed resume command, ends with the uninterrupted run's metrics."""

from __future__ import annotations

import collections
import hashlib
import re
from pathlib import Path

import lightning as L

from tests.test_resume_faults_cli import RUN, assert_same_metrics, metrics_of


class SeenClasses(L.Callback):
    """Writes `<out_dir>/rank<R>.txt`: one line per training sample, `<epoch> <SHA-1 of its input> <class>`."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / f"rank{trainer.global_rank}.txt", "a") as f:
            for x, y in zip(*batch):
                f.write(f"{trainer.current_epoch} {hashlib.sha1(x.numpy().tobytes()).hexdigest()} {int(y)}\n")


def test_balanced_sampler_under_ddp_ranks_draw_disjoint_equal_shares_of_uniform_classes(cli, tmp_path):
    seen = tmp_path / "seen"
    # random 1x8x8 images (no two alike), 10 classes cut to a ratio of 20: 200 ... 10 training images
    result = cli("src.train", "trainer=ddp_sim", "data=random_images", "data.input_shape=[1,8,8]",
                 "data.num_train=2500", "data.num_test=100", "data.imbalance_ratio=20", "data.sampler=balanced",
                 "data.batch_size=32",
                 "trainer.max_epochs=2", "logger=none", "callbacks=none",
                 "+callbacks.seen._target_=tests.test_imbalance_cli.SeenClasses", f"+callbacks.seen.out_dir={seen}")
    assert result.returncode == 0, result.output[-3000:]
    kept = re.search(r"training samples kept, per class \[([\d, ]+)\]", result.output)
    counts = [int(n) for n in kept.group(1).split(", ")]
    assert counts[0] / counts[-1] >= 15  # long-tailed (the classes are random, so about 20)
    rows = {r: [line.split() for line in (seen / f"rank{r}.txt").read_text().splitlines()] for r in (0, 1)}
    for epoch in ("0", "1"):
        drawn = {r: [(h, int(c)) for e, h, c in rows[r] if e == epoch] for r in (0, 1)}
        assert len(drawn[0]) == len(drawn[1]) == sum(counts) // 2  # each rank its half of the split's size
        assert not {h for h, _ in drawn[0]} & {h for h, _ in drawn[1]}  # no sample drawn by both ranks
        classes = collections.Counter(c for r in (0, 1) for _, c in drawn[r])
        uniform = sum(counts) / 10
        assert all(abs(classes[c] - uniform) <= 0.1 * uniform for c in range(10)), (classes, uniform)
        assert len({h for r in (0, 1) for h, c in drawn[r] if c == 9}) <= counts[9]  # the rare class, repeated


def test_sigterm_mid_epoch_then_resume_with_the_balanced_sampler_gives_the_uninterrupted_metrics(cli, tmp_path):
    run = [*RUN, "data.imbalance_ratio=10", "data.sampler=balanced", "model.class_weights=inv_freq"]
    straight = cli("src.train", *run, new_interpreter=True)
    assert straight.returncode == 0, straight.output[-2000:]
    (straight_run,) = straight.run_dirs()
    # 528 training digits after the cut: 9 batches per epoch; the signal comes after batch 4 of epoch 1
    faults = ["+callbacks.signal._target_=tests.faults.SignalAt", "+callbacks.signal.moments=[train_batch@1:4]",
              f"+callbacks.signal.done_dir={tmp_path / 'signals_sent'}"]
    stopped = cli("src.train", *run, *faults)
    assert stopped.returncode == 143, stopped.output[-2000:]
    assert "Interrupted in epoch 1, step 14: saved " in stopped.stdout, stopped.stdout[-2000:]
    (command,) = re.findall(r"^Resume with: python -m src\.train (ckpt_path=\S+)$", stopped.stdout, re.M)
    resumed = cli("src.train", command)
    assert resumed.returncode == 0, resumed.output[-3000:]
    (run_dir,) = [r for r in resumed.run_dirs() if r != straight_run and (r / "checkpoints").is_dir()]
    assert_same_metrics(metrics_of(run_dir), metrics_of(straight_run))
    assert metrics_of(run_dir)["test/balanced_acc"] == metrics_of(straight_run)["test/balanced_acc"]

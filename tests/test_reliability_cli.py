"""Resume, interruption, failing sweep jobs, determinism, non-finite loss and launchers: each through the
CLI, as a user types it (distributed training: tests/test_ddp_fresh_data_cli.py; faults at chosen moments:
tests/test_resume_faults_cli.py; sweep folders and requeues: tests/test_sweep_folder_cli.py,
tests/test_submitit_requeue_cli.py; Optuna searches: tests/test_optuna_search_cli.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, assert_one_sentence

FAST = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none"]


def final(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["metrics"]


def test_resume_to_four_epochs_equals_four_uninterrupted_epochs(cli):
    args = [*FAST, "model.net.dropout=0.2", "callbacks.early_stopping=null"]  # dropout: RNG state matters too
    straight = cli("src.train", *args, "trainer.max_epochs=4")
    assert straight.returncode == 0, straight.output[-2000:]
    (run_a,) = straight.run_dirs()
    first = cli("src.train", *args, "trainer.max_epochs=2")
    assert first.returncode == 0, first.output[-2000:]
    run_b = next(r for r in first.run_dirs() if r != run_a)
    resumed = cli("src.train", "ckpt_path=last", "trainer.max_epochs=4", "callbacks.progress_bar=null")
    assert resumed.returncode == 0, resumed.output[-2000:]
    assert f"logs and checkpoints continue in {run_b}" in resumed.stdout
    a, b = final(run_a), final(run_b)  # the resumed run wrote into its own folder
    for key in ("train/loss", "val/loss", "val/acc", "test/acc", "test/loss"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    assert sorted(p.name for p in (run_b / "checkpoints").iterdir())[-1] == "last.ckpt"


def test_resume_rejects_changing_the_composition(cli, cli_in_process):
    first = cli("src.train", *FAST, "trainer.max_epochs=1")
    assert first.returncode == 0
    assert_one_sentence(cli_in_process("src.train", "ckpt_path=last", "model=softmax_regression"),
                  "a resumed run keeps its configuration, so 'model=softmax_regression' cannot change it")


# `python -m src.train` as a terminal starts it: Ctrl-C raises KeyboardInterrupt, even where the test runner
# was started with SIGINT ignored (a background job of a non-interactive shell), which its children inherit.
AS_IN_A_TERMINAL = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                    "runpy.run_module('src.train', run_name='__main__', alter_sys=True)")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interruption_saves_a_checkpoint_and_says_how_to_resume(tmp_path, sig, code):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", AS_IN_A_TERMINAL, *FAST, "trainer.max_epochs=100000", "callbacks.early_stopping=null"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(tmp_path.glob("logs/train/runs/*/checkpoints/last.ckpt")):
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()[0][-2000:]  # still training, with a checkpoint written
        time.sleep(1.0)
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a signal that did not stop it: no process left training
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, output[-2000:]
    (ckpt,) = tmp_path.glob("logs/train/runs/*/checkpoints/interrupted.ckpt")
    assert f"Resume with: python -m src.train ckpt_path={ckpt}" in output


def test_a_failing_sweep_job_is_recorded_and_the_sweep_goes_on(cli):
    result = cli("src.train", "-m", "optimizer.lr=0.01,-1,0.02", "trainer.max_epochs=1", *FAST)
    assert result.returncode == 0, result.output[-2000:]
    (sweep,) = (result.cwd / "logs" / "train" / "multiruns").iterdir()
    assert (sweep / "0" / "metrics.json").is_file() and (sweep / "2" / "metrics.json").is_file()
    failed = json.loads((sweep / "1" / "failed.json").read_text())
    assert failed["status"] == "failed" and "optimizer.lr must be a positive number, got -1" in failed["error"]


def test_one_seed_gives_identical_metrics_and_another_seed_different_ones(cli):
    """seed=7 twice (a new interpreter, then a forked process: fresh random states, different string-hash
    seeds) gives the same metrics; seed=8 gives others (the seed reaches initialisation and data order)."""
    args = [*FAST, "trainer.deterministic=true", "trainer.max_epochs=2", "model.net.dropout=0.2"]
    runs = [cli("src.train", *args, "seed=7", new_interpreter=True), cli("src.train", *args, "seed=7"),
            cli("src.train", *args, "seed=8")]
    assert all(r.returncode == 0 for r in runs), [r.output[-2000:] for r in runs]
    seven, seven_again, eight = (final(run) for run in runs[-1].run_dirs())  # run folders sort by start time
    assert seven == seven_again
    assert all(seven[key] != eight[key] for key in ("train/loss", "val/loss", "test/loss")), (seven, eight)


def test_non_finite_loss_stops_the_run_without_a_checkpoint_of_it(cli):
    result = cli("src.train", *FAST, "optimizer=sgd", "optimizer.lr=1e30", "trainer.max_epochs=3")
    assert_one_sentence(result, "the training loss became",
                        "lower the learning rate (optimizer.lr=1e+30 now, try 1e+29)")
    assert not list(result.cwd.glob("logs/train/runs/*/checkpoints/*.ckpt"))


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' has the wrong type"),
        (["ckpt_path=missing.ckpt"], "no checkpoint at missing.ckpt"),
        (["paths.log_dir=/proc/no_such_dir"], "cannot write the run folder /proc/no_such_dir/train/runs/"),
        pytest.param(["trainer.accelerator=gpu"], "trainer.accelerator=gpu needs a CUDA GPU, but PyTorch finds none",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
    ],
)
def test_bad_input_is_one_sentence(cli_in_process, args, fragment):
    assert_one_sentence(cli_in_process("src.train", *args, *FAST), fragment)


def test_truncated_data_file_is_one_sentence(cli_in_process, tmp_path):
    raw = tmp_path / "fmnist" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    sizes = {"train-images-idx3-ubyte": 16 + 60000 * 784, "train-labels-idx1-ubyte": 8 + 60000,
             "t10k-images-idx3-ubyte": 16 + 10000 * 784, "t10k-labels-idx1-ubyte": 8 + 10000}
    for name, size in sizes.items():  # valid IDX headers, then far too few bytes
        magic, count = (2051, 60000 if "train" in name else 10000) if "images" in name else \
            (2049, 60000 if "train" in name else 10000)
        header = magic.to_bytes(4, "big") + count.to_bytes(4, "big")
        header += (28).to_bytes(4, "big") * 2 if "images" in name else b""
        (raw / name).write_bytes(header + bytes(min(size, 1000)))
    result = cli_in_process("src.train", "data=fashion_mnist", f"data.data_dir={tmp_path / 'fmnist'}",
                            "data.system_dir=null", "data.download=false", "model=lenet", *FAST)
    assert_one_sentence(result, f"Fashion-MNIST files in {raw} could not be read", "truncated or corrupt")


def test_slurm_launcher_config_composes(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "trainer=ddp"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.trainer.strategy == "ddp"
    # submitit signals a job this long before its time limit, and requeues it up to 3 times
    assert cfg.hydra.launcher.signal_delay_s == 120 and cfg.hydra.launcher.max_num_timeout == 3
    from omegaconf import OmegaConf

    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher["submitit_folder"] == "${hydra.sweep.dir}/.submitit/%j"  # in the sweep folder

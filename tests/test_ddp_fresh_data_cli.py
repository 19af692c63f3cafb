"""`trainer=ddp_sim` (two processes over gloo) on a fresh, empty data folder: the data module unzips,
extracts or downloads in `prepare_data()` (once, on rank zero) and both processes only read in
`setup()`, so the first run passes. Real Fashion-MNIST from Debian's package, and a CIFAR-10 archive
in the official format written by the test."""

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

FAST = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none"]
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def leftovers(folder: Path) -> list[str]:
    """Temporary files of an unzip or an extraction that did not finish."""
    return [p.name for p in folder.rglob(".*")]


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_SYSTEM_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_ddp_sim_on_fresh_fashion_mnist_trains_on_two_processes_with_one_set_of_outputs(cli):
    result = cli("src.train", "trainer=ddp_sim", "data=fashion_mnist", "trainer.max_epochs=1",
                 "trainer.limit_train_batches=40", "trainer.limit_val_batches=5", "trainer.limit_test_batches=10",
                 "trainer.num_sanity_val_steps=0", *FAST)
    assert result.returncode == 0, result.output[-3000:]
    raw = result.cwd / "data" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"])
    assert not leftovers(result.cwd / "data")
    (run,) = [r for r in result.run_dirs() if (r / "metrics.json").is_file()]
    assert result.stdout.count("test: acc=") == 1  # rank zero prints, rank one does not
    assert len(list((run / "checkpoints").glob("epoch_*.ckpt"))) == 1
    assert result.metrics()["test/acc"] >= 0.6  # 40 steps of 2 x 128 images: the ranks' gradients are averaged


def cifar_archive(folder: Path, reference: Path) -> None:
    """`cifar-10-python.tar.gz` holding `cifar-10-batches-py/` (5 training batches and the test batch:
    pickled dicts of uint8 rows of 1024 red, 1024 green, 1024 blue values; `batches.meta`: the class
    names), with a plain copy of the folder in `reference`."""
    rng = np.random.default_rng(0)
    inner = reference / "cifar-10-batches-py"
    inner.mkdir(parents=True)

    def batch(n: int, first: int) -> dict:
        return {"batch_label": "tiny", "labels": [(first + i) % 10 for i in range(n)],
                "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), "filenames": ["x.png"] * n}

    for b in range(5):
        (inner / f"data_batch_{b + 1}").write_bytes(pickle.dumps(batch(20, b * 20)))
    (inner / "test_batch").write_bytes(pickle.dumps(batch(20, 0)))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (inner / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3072}))
    folder.mkdir(parents=True)
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(inner, arcname="cifar-10-batches-py")


@pytest.mark.slow
def test_ddp_sim_extracts_a_cifar10_archive_once_and_trains(cli, tmp_path):
    data, reference = tmp_path / "data", tmp_path / "reference"
    cifar_archive(data, reference)
    result = cli("src.train", "trainer=ddp_sim", "data=cifar10", "data.batch_size=16", "trainer.fast_dev_run=true",
                 "+callbacks.pin._target_=tests.pinned_checksums.PinCIFAR10Checksums",
                 f"+callbacks.pin.reference={reference / 'cifar-10-batches-py'}", *FAST)
    assert result.returncode == 0, result.output[-3000:]
    extracted = sorted(p.name for p in (data / "cifar-10-batches-py").iterdir())
    assert extracted == sorted(p.name for p in (reference / "cifar-10-batches-py").iterdir())
    assert not leftovers(data)
    assert result.stdout.count("test: acc=") == 1

"""`python -m src.train` on image data, as a user types it: real Fashion-MNIST through a few zoo models
(one batch each), and the one-sentence failure when a data set is missing offline."""

from __future__ import annotations

from pathlib import Path

import pytest

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_SYSTEM_DIR.is_dir(), reason=f"Debian's dataset-fashion-mnist ({FASHION_SYSTEM_DIR}) is not installed"
)


@needs_fashion_mnist
@pytest.mark.parametrize(
    "model,extra",
    [
        ("lenet", ["augment=[flip_crop,erasing]"]),  # the augmentation path end to end, too
        ("resnet", []),
        ("googlenet", []),
        ("notes4_dropout_cnn", []),
    ],
)
def test_zoo_model_runs_one_batch_of_real_fashion_mnist(cli, model, extra):
    result = cli("src.train", f"model={model}", "data=fashion_mnist", "data.batch_size=16",
                 "trainer.fast_dev_run=true", *extra)
    assert result.returncode == 0, result.output[-3000:]
    assert "test: acc=" in result.stdout
    assert (result.cwd / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_missing_cifar10_offline_is_one_sentence_without_traceback(cli, monkeypatch):
    # Every download attempt goes to a closed local port: offline on any machine, and fast.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    result = cli("src.train", "model=resnet", "data=cifar10")
    assert result.returncode == 2, result.output[-3000:]
    assert "Traceback" not in result.output
    data = result.cwd / "data"
    assert (
        f"error: CIFAR-10 is not in {data} and could not be downloaded (offline?): put cifar-10-python.tar.gz "
        f"(or its extracted folder cifar-10-batches-py/) in {data}, or run once with network access.\n"
    ) in result.stderr

"""The torchvision image DataModules on tiny files written in each data set's exact on-disk format.

Every test goes through the real loading path (torchvision's readers, our tensor conversion, the
base class's split and normalisation). torchvision checks the md5 sums of CIFAR, SVHN and STL-10
files against the official ones, which tiny files cannot match: the tests pin the expected sums to
those of the files they write (`pin_md5`), so the integrity check still runs, honestly, on them.
Nothing here touches the network: downloads are off or `urlopen` fails as it does offline.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd

from src.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from src.data.mnist import IDX_FILES, FashionMNISTDataModule, MNISTDataModule
from src.data.stl10 import STL10DataModule
from src.data.svhn import SVHNDataModule
from src.errors import UserError

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = [0, 3, 7, 9]  # four of the classes present: 2 training images each, one per class held out


def tiny_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random uint8 images whose first byte is the image's index (to find each one after shuffling)."""
    images = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    images.reshape(n, -1)[:, 0] = np.arange(n)
    return images


def labels(n: int) -> np.ndarray:
    return np.array([CLASSES[i % len(CLASSES)] for i in range(n)], dtype=np.int64)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def common(**overrides) -> dict:
    kw = dict(num_classes=10, batch_size=4, val_fraction=0.5, split_seed=0, download=False)
    return {**kw, **overrides}


def check_splits(dm, train_images: np.ndarray, train_labels, test_images: np.ndarray, test_labels) -> None:
    """Train + val hold exactly the training images (with their labels); test is the test split in order."""
    dm.prepare_data()
    dm.setup()
    assert dm.train_split.inputs.dtype == torch.uint8
    assert torch.equal(dm.test_split.inputs, torch.from_numpy(test_images))
    assert dm.test_split.targets.tolist() == list(test_labels)
    inputs = torch.cat([dm.train_split.inputs, dm.val_split.inputs])
    targets = torch.cat([dm.train_split.targets, dm.val_split.targets])
    order = inputs.flatten(1)[:, 0].long().argsort()  # first byte = index in the file
    assert torch.equal(inputs[order], torch.from_numpy(train_images))
    assert targets[order].tolist() == list(train_labels)
    assert len(dm.val_split) == len(CLASSES)  # stratified: one per class
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.float32 and x.shape[1:] == dm.train_split.inputs.shape[1:] and y.dtype == torch.long


def check_normalisation(dm, mean: list[float], std: list[float]) -> None:
    x = dm.test_split.inputs
    expected = (x.float() / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    assert torch.allclose(dm.transform(x), expected, atol=1e-5)
    (batch, _), *_ = list(dm.test_dataloader())
    assert torch.allclose(batch, expected[: len(batch)], atol=1e-5)


# --- MNIST / Fashion-MNIST: IDX files ------------------------------------------------------------
def write_idx(folder: Path, train: np.ndarray, train_y, test: np.ndarray, test_y, compress: bool = False) -> None:
    """The four IDX files: big-endian magic 2051 (uint8, 3 dims) / 2049 (uint8, 1 dim), sizes, bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    content = {}
    for prefix, images, targets in (("train", train, train_y), ("t10k", test, test_y)):
        n, h, w = images.shape
        content[f"{prefix}-images-idx3-ubyte"] = struct.pack(">IIII", 2051, n, h, w) + images.tobytes()
        content[f"{prefix}-labels-idx1-ubyte"] = struct.pack(">II", 2049, n) + np.asarray(targets, np.uint8).tobytes()
    for name, data in content.items():
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.fixture
def idx_data():
    train, test = tiny_images(8, (28, 28), seed=1), tiny_images(5, (28, 28), seed=2)
    return train, labels(8), test, labels(5)


def test_mnist_reads_idx_files_from_the_raw_folder(tmp_path, idx_data):
    train, train_y, test, test_y = idx_data
    write_idx(tmp_path / "MNIST" / "raw", *idx_data)
    dm = MNISTDataModule(data_dir=str(tmp_path), name="mnist", input_shape=[1, 28, 28],
                         mean=[0.1307], std=[0.3081], **common())
    check_splits(dm, train[:, None], train_y, test[:, None], test_y)
    check_normalisation(dm, [0.1307], [0.3081])
    assert dm.class_names[0] == "0 - zero" and len(dm.class_names) == 10


def test_mnist_unzips_gz_files_left_in_the_raw_folder(tmp_path, idx_data):
    write_idx(tmp_path / "MNIST" / "raw", *idx_data, compress=True)
    dm = MNISTDataModule(data_dir=str(tmp_path), name="mnist", input_shape=[1, 28, 28], **common())
    dm.prepare_data()
    assert all((tmp_path / "MNIST" / "raw" / name).is_file() for name in IDX_FILES)
    dm.setup()
    assert len(dm.test_split) == 5


def test_fashion_mnist_copies_from_the_system_folder(tmp_path, idx_data):
    train, train_y, test, test_y = idx_data
    system = tmp_path / "debian"
    write_idx(system, *idx_data, compress=True)  # Debian ships the .gz files
    dm = FashionMNISTDataModule(data_dir=str(tmp_path / "data"), system_dir=str(system), name="fashion_mnist",
                                input_shape=[1, 28, 28], mean=None, std=None, **common())
    check_splits(dm, train[:, None], train_y, test[:, None], test_y)
    assert dm.class_names == tvd.FashionMNIST.classes
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    whole = dm.transform(dm.train_split.inputs)  # mean/std null: fitted on the training split
    assert abs(whole.mean().item()) < 1e-4 and abs(whole.std(unbiased=False).item() - 1) < 1e-3


# --- CIFAR-10 / CIFAR-100: python pickle batches -----------------------------------------------------
def cifar_rows(images_hwc: np.ndarray) -> np.ndarray:
    """CIFAR's rows: 1024 red, then 1024 green, then 1024 blue values, each image row-major."""
    return images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), -1)


def dump(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj))


def test_cifar10_reads_pickle_batches(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train, test = tiny_images(8, (32, 32, 3), seed=3), tiny_images(4, (32, 32, 3), seed=4)
    train_y, test_y = labels(8), labels(4)
    for b, (start, stop) in enumerate([(0, 2), (2, 4), (4, 6), (6, 7), (7, 8)]):  # data_batch_1..5
        part = slice(start, stop)
        dump(folder / f"data_batch_{b + 1}", {"data": cifar_rows(train[part]), "labels": train_y[part].tolist()})
    dump(folder / "test_batch", {"data": cifar_rows(test), "labels": test_y.tolist()})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    dump(folder / "batches.meta", {"label_names": names})
    pin_md5(monkeypatch, tvd.CIFAR10, folder)

    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    dm = CIFAR10DataModule(data_dir=str(tmp_path), name="cifar10", input_shape=[3, 32, 32],
                           mean=mean, std=std, **common())
    check_splits(dm, train.transpose(0, 3, 1, 2), train_y, test.transpose(0, 3, 1, 2), test_y)
    check_normalisation(dm, mean, std)
    assert dm.class_names == names


def test_cifar100_uses_fine_labels(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train, test = tiny_images(8, (32, 32, 3), seed=5), tiny_images(3, (32, 32, 3), seed=6)
    fine = np.array([0, 42, 77, 99] * 2)
    dump(folder / "train", {"data": cifar_rows(train), "fine_labels": fine.tolist(), "coarse_labels": [0] * 8})
    dump(folder / "test", {"data": cifar_rows(test), "fine_labels": [99, 0, 42], "coarse_labels": [0] * 3})
    names = [f"class_{i}" for i in range(100)]
    dump(folder / "meta", {"fine_label_names": names, "coarse_label_names": [f"super_{i}" for i in range(20)]})
    pin_md5(monkeypatch, tvd.CIFAR100, folder)

    dm = CIFAR100DataModule(data_dir=str(tmp_path), name="cifar100", input_shape=[3, 32, 32],
                            mean=[0.5] * 3, std=[0.25] * 3, **common(num_classes=100))
    dm.setup()
    assert dm.test_split.targets.tolist() == [99, 0, 42]
    assert sorted(torch.cat([dm.train_split.targets, dm.val_split.targets]).tolist()) == sorted(fine.tolist())
    assert dm.class_names == names
    check_normalisation(dm, [0.5] * 3, [0.25] * 3)


def pin_md5(monkeypatch, cls, folder: Path) -> None:
    """Point `cls`'s expected md5 sums (train_list, test_list, meta) at the files just written."""
    pinned = lambda entries: [[name, md5(folder / name)] for name, _ in entries]
    monkeypatch.setattr(cls, "train_list", pinned(cls.train_list))
    monkeypatch.setattr(cls, "test_list", pinned(cls.test_list))
    if hasattr(cls, "meta"):
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})


# --- SVHN: MATLAB files -------------------------------------------------------------------------
def test_svhn_reads_mat_files_and_maps_label_10_to_0(tmp_path, monkeypatch):
    from scipy.io import savemat

    train, test = tiny_images(8, (3, 32, 32), seed=7), tiny_images(4, (3, 32, 32), seed=8)
    train_y, test_y = labels(8), labels(4)
    for name, images, y in (("train_32x32.mat", train, train_y), ("test_32x32.mat", test, test_y)):
        stored = np.where(y == 0, 10, y).reshape(-1, 1).astype(np.uint8)  # SVHN stores digit 0 as 10
        savemat(tmp_path / name, {"X": images.transpose(2, 3, 1, 0), "y": stored})  # X: (H, W, C, N)
    split_list = {k: [url, name, md5(tmp_path / name) if (tmp_path / name).is_file() else checksum]
                  for k, (url, name, checksum) in tvd.SVHN.split_list.items()}
    monkeypatch.setattr(tvd.SVHN, "split_list", split_list)

    dm = SVHNDataModule(data_dir=str(tmp_path), name="svhn", input_shape=[3, 32, 32],
                        mean=[0.4377, 0.4438, 0.4728], std=[0.1980, 0.2010, 0.1970], **common())
    check_splits(dm, train, train_y, test, test_y)
    check_normalisation(dm, [0.4377, 0.4438, 0.4728], [0.1980, 0.2010, 0.1970])
    assert dm.class_names == [str(d) for d in range(10)]


# --- STL-10: binary files -----------------------------------------------------------------------
def test_stl10_reads_column_major_binaries(tmp_path, monkeypatch):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    train, test = tiny_images(8, (3, 96, 96), seed=9), tiny_images(3, (3, 96, 96), seed=10)
    train_y, test_y = labels(8), labels(3)
    for prefix, images, y in (("train", train, train_y), ("test", test, test_y)):
        (folder / f"{prefix}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())  # each channel column-major
        (folder / f"{prefix}_y.bin").write_bytes((y + 1).astype(np.uint8).tobytes())  # labels 1..10
    (folder / "unlabeled_X.bin").write_bytes(tiny_images(1, (3, 96, 96), seed=11).tobytes())
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    pin_md5(monkeypatch, tvd.STL10, folder)

    dm = STL10DataModule(data_dir=str(tmp_path), name="stl10", input_shape=[3, 96, 96],
                         mean=[0.5] * 3, std=[0.5] * 3, **common())
    check_splits(dm, train, train_y, test, test_y)
    check_normalisation(dm, [0.5] * 3, [0.5] * 3)
    assert dm.class_names == names


# --- missing files ------------------------------------------------------------------------------
OFFLINE_CASES = [
    (MNISTDataModule, [1, 28, 28], "MNIST is not in {root}/MNIST/raw", "train-images-idx3-ubyte.gz"),
    (FashionMNISTDataModule, [1, 28, 28], "Fashion-MNIST is not in {root}/FashionMNIST/raw", "t10k-labels-idx1"),
    (CIFAR10DataModule, [3, 32, 32], "CIFAR-10 is not in {root}", "cifar-10-python.tar.gz (or its extracted"),
    (CIFAR100DataModule, [3, 32, 32], "CIFAR-100 is not in {root}", "cifar-100-python.tar.gz"),
    (SVHNDataModule, [3, 32, 32], "SVHN is not in {root}", "train_32x32.mat and test_32x32.mat"),
    (STL10DataModule, [3, 96, 96], "STL-10 is not in {root}", "stl10_binary.tar.gz"),
]


@pytest.fixture
def offline(monkeypatch):
    """urllib fails the way it does without network (no DNS), however the machine is connected."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


@pytest.mark.parametrize("cls,shape,start,names", OFFLINE_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_missing_files_offline_give_one_sentence_naming_files_and_folder(tmp_path, offline, cls, shape, start, names):
    kw = dict(system_dir=None) if issubclass(cls, MNISTDataModule) else {}
    dm = cls(data_dir=str(tmp_path), name="x", input_shape=shape, **common(download=True), **kw)
    with pytest.raises(UserError) as info:
        dm.prepare_data()  # the download happens here, once per node
    message = str(info.value)
    assert message.startswith(start.format(root=tmp_path) + " and could not be downloaded (offline?): put ")
    assert names in message and message.endswith(", or run once with network access.")
    assert message.count(". ") == 0 and "\n" not in message  # one sentence


def test_missing_files_without_download_say_so(tmp_path):
    dm = CIFAR10DataModule(data_dir=str(tmp_path), name="cifar10", input_shape=[3, 32, 32], **common())
    expected = r"data\.download is false: put cifar-10-python\.tar\.gz .* data\.download=true\."
    dm.prepare_data()  # nothing to extract, nothing to download
    with pytest.raises(UserError, match=expected):
        dm.setup()


def test_mean_and_std_need_one_value_per_channel(tmp_path):
    with pytest.raises(UserError, match="one value per channel"):
        CIFAR10DataModule(data_dir=str(tmp_path), name="cifar10", input_shape=[3, 32, 32], mean=[0.5], std=[0.5],
                          **common())


# --- the real Fashion-MNIST (Debian's dataset-fashion-mnist) -------------------------------------
@pytest.mark.skipif(not FASHION_SYSTEM_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_loads_offline_from_the_debian_package(tmp_path):
    dm = FashionMNISTDataModule(data_dir=str(tmp_path), system_dir=str(FASHION_SYSTEM_DIR), name="fashion_mnist",
                                num_classes=10, input_shape=[1, 28, 28], mean=[0.2860], std=[0.3530],
                                batch_size=128, download=False)
    dm.prepare_data()
    dm.setup()
    assert (len(dm.train_split), len(dm.val_split), len(dm.test_split)) == (54_000, 6_000, 10_000)
    assert dm.class_names[0] == "T-shirt/top" and dm.class_names[-1] == "Ankle boot"
    assert torch.bincount(dm.test_split.targets).tolist() == [1000] * 10
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (128, 1, 28, 28) and abs(x.mean().item()) < 0.2 and abs(x.std().item() - 1) < 0.2


# --- prepare_data() writes, setup() only reads ---------------------------------------------------
def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def cifar10_archive(data: Path, reference: Path, monkeypatch) -> None:
    """`cifar-10-python.tar.gz` in `data`, packed from the batches written to `reference` (md5 sums pinned)."""
    import tarfile

    folder = reference / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train, test = tiny_images(8, (32, 32, 3), seed=12), tiny_images(4, (32, 32, 3), seed=13)
    for b, (start, stop) in enumerate([(0, 2), (2, 4), (4, 6), (6, 7), (7, 8)]):
        part = {"data": cifar_rows(train[start:stop]), "labels": labels(8)[start:stop].tolist()}
        dump(folder / f"data_batch_{b + 1}", part)
    dump(folder / "test_batch", {"data": cifar_rows(test), "labels": labels(4).tolist()})
    dump(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    pin_md5(monkeypatch, tvd.CIFAR10, folder)
    data.mkdir(parents=True)
    with tarfile.open(data / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")


def test_prepare_data_makes_the_files_and_setup_only_reads_them(tmp_path, idx_data, monkeypatch):
    write_idx(tmp_path / "debian", *idx_data, compress=True)
    cifar10_archive(tmp_path / "cifar", tmp_path / "reference", monkeypatch)
    modules = [
        (FashionMNISTDataModule(data_dir=str(tmp_path / "fmnist"), system_dir=str(tmp_path / "debian"), name="f",
                                input_shape=[1, 28, 28], **common()), tmp_path / "fmnist" / "FashionMNIST" / "raw"),
        (CIFAR10DataModule(data_dir=str(tmp_path / "cifar"), name="c", input_shape=[3, 32, 32], **common()),
         tmp_path / "cifar" / "cifar-10-batches-py"),
    ]
    for dm, readable in modules:
        dm.prepare_data()
        assert readable.is_dir() and len(list(readable.iterdir())) >= 4, readable
        before = snapshot(Path(dm.data_dir))
        dm.setup()
        assert len(dm.test_split) in (4, 5)
        assert snapshot(Path(dm.data_dir)) == before  # nothing written, nothing touched
        assert not [p for p in Path(dm.data_dir).rglob(".*")]  # no temporary file left


def test_setup_without_prepare_data_writes_nothing(tmp_path, idx_data):
    write_idx(tmp_path / "debian", *idx_data, compress=True)
    dm = FashionMNISTDataModule(data_dir=str(tmp_path / "fresh"), system_dir=str(tmp_path / "debian"), name="f",
                                input_shape=[1, 28, 28], **common())
    with pytest.raises(UserError, match="Fashion-MNIST is not in"):
        dm.setup()
    assert not (tmp_path / "fresh").exists()


def test_an_archive_that_cannot_be_extracted_leaves_no_half_folder(tmp_path, monkeypatch):
    cifar10_archive(tmp_path / "cifar", tmp_path / "reference", monkeypatch)
    archive = tmp_path / "cifar" / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:2000])  # cut short, as a download interrupted
    dm = CIFAR10DataModule(data_dir=str(tmp_path / "cifar"), name="c", input_shape=[3, 32, 32], **common())
    with pytest.raises(UserError, match="CIFAR-10 files in .* could not be read"):
        dm.prepare_data()
    assert sorted(p.name for p in (tmp_path / "cifar").iterdir()) == ["cifar-10-python.tar.gz"]

"""`data=image_folder` on real images: Fashion-MNIST's test split as PNG class folders (the same accuracy as
the built-in module on the same images), scikit-learn's photos in five formats, the decoded-image cache,
both loaders, unreadable files and the one-sentence errors."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from src.builders import build_datamodule
from src.data.mnist import FashionMNISTDataModule
from src.data.splits import Split
from src.errors import UserError
from tests.own_data import (
    fashion_folder_name,
    fashion_test_split,
    needs_fashion_mnist,
    user_error,
    write_fashion_pngs,
    write_photo_folder,
)

TRAIN_IMAGES, TEST_IMAGES = 2400, 600
GREY_28 = ["data.channels=1", "data.image_size=28"]
FASHION_NORM = ["data.mean=[0.2860]", "data.std=[0.3530]"]  # conf/data/fashion_mnist.yaml's


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory) -> Path:
    """Fashion-MNIST test images 0..2999 as PNGs: train/ the first 2,400, test/ the next 600."""
    if not (Path("/usr/share/datasets/fashion-mnist") / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    root = tmp_path_factory.mktemp("fashion") / "fashion_pngs"
    images, labels = fashion_test_split()
    write_fashion_pngs(root / "train", images[:TRAIN_IMAGES], labels[:TRAIN_IMAGES])
    end = TRAIN_IMAGES + TEST_IMAGES
    write_fashion_pngs(root / "test", images[TRAIN_IMAGES:end], labels[TRAIN_IMAGES:end], first=TRAIN_IMAGES)
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("photos") / "photos"
    return root, write_photo_folder(root)


def image_folder(compose, root: Path, *extra: str):
    cfg = compose(["data=image_folder", f"data.root={root}", *extra])
    return build_datamodule(cfg.data)


class FashionMNISTSubset(FashionMNISTDataModule):
    """The built-in Fashion-MNIST module restricted to the test images written as PNGs above, in the image
    folder's order (by class, then position): the same images through the built-in pipeline."""

    def __init__(self, train_images: int, test_images: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.train_images, self.test_images = train_images, test_images

    def load(self):
        _, _, official_test, names = super().load()
        x, y = official_test.inputs, official_test.targets

        def part(start: int, end: int) -> Split:
            order = sorted(range(start, end), key=lambda i: (int(y[i]), i))
            return Split(x[order], y[order])

        n = self.train_images
        return part(0, n), None, part(n, n + self.test_images), names


@needs_fashion_mnist
def test_fashion_mnist_pngs_train_lenet_to_the_built_in_modules_accuracy(fashion_root, compose, tmp_path):
    from src.train import train

    common = ["model=lenet", "trainer=cpu", "trainer.max_epochs=2", "logger=none", "callbacks.progress_bar=null",
              "callbacks.model_summary=null", "seed=42", "data.batch_size=128"]
    folder = train(compose(["data=image_folder", f"data.root={fashion_root}", *GREY_28, *FASHION_NORM, *common]))
    built_in = train(compose(["data=fashion_mnist", f"data._target_={__name__}.FashionMNISTSubset",
                              f"+data.train_images={TRAIN_IMAGES}", f"+data.test_images={TEST_IMAGES}", *common,
                              f"callbacks.model_checkpoint.dirpath={tmp_path / 'built_in'}"]))
    assert folder["test/acc"] > 0.6  # it learnt (10 classes: chance is 0.1)
    assert abs(folder["test/acc"] - built_in["test/acc"]) <= 0.01


@needs_fashion_mnist
def test_the_cache_holds_the_exact_pixels_and_the_folder_names_are_the_classes(fashion_root, compose):
    dm = image_folder(compose, fashion_root, *GREY_28)
    dm.prepare_data()
    dm.setup("fit")
    images, labels = fashion_test_split()
    end = TRAIN_IMAGES + TEST_IMAGES
    order = sorted(range(TRAIN_IMAGES, end), key=lambda i: (int(labels[i]), i))
    assert torch.equal(dm.test_split.inputs[:, 0], torch.from_numpy(images[order]))  # PNG is lossless
    assert dm.test_split.targets.tolist() == labels[order].tolist()
    assert dm.class_names == [fashion_folder_name(k) for k in range(10)]
    assert dm.test_split.names[0] == f"test/{fashion_folder_name(0)}/{order[0]:05d}.png"
    assert len(dm.train_split) + len(dm.val_split) == TRAIN_IMAGES and len(dm.val_split) == 240  # val carved
    assert dm.state_dict()["class_names"] == dm.class_names  # stored in checkpoints


@needs_fashion_mnist
def test_the_per_sample_loader_gives_the_same_evaluation_batches_and_augments_in_workers(fashion_root, compose):
    tensor = image_folder(compose, fashion_root, *GREY_28, *FASHION_NORM, "data.loader=tensor")
    per_sample = image_folder(compose, fashion_root, *GREY_28, *FASHION_NORM, "data.loader=dataloader",
                              "data.num_workers=0")
    for dm in (tensor, per_sample):
        dm.prepare_data()
        dm.setup("fit")
    a = torch.cat([x for x, _ in tensor.test_dataloader()])
    b = torch.cat([x for x, _ in per_sample.test_dataloader()])
    assert torch.equal(a, b)

    augmented = image_folder(compose, fashion_root, *GREY_28, "data.loader=dataloader", "data.num_workers=2",
                             "data.random_resized_crop=[0.35,1.0]", "data.horizontal_flip=0.5",
                             "data.auto_augment=trivial", "data.color_jitter=0.3", "data.batch_size=32")
    augmented.prepare_data()
    augmented.setup("fit")
    x, y = next(iter(augmented.train_dataloader()))  # decoded and augmented in two worker processes
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (32,)
    assert abs(float(x.mean())) < 1.0  # normalised with statistics fitted on the training images
    grid = augmented.display_inputs(augmented.test_split, torch.tensor([0, 5]))
    assert grid.dtype == torch.uint8 and grid.shape == (2, 1, 28, 28)


def write_small_folder(root: Path, n_per_class: int = 10) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(n_per_class):
            Image.fromarray((rng.random((20, 24)) * 255).astype(np.uint8), "L").save(root / label / f"{i}.png")


def test_the_cache_is_built_once_and_rebuilt_when_a_file_or_the_size_changes(tmp_path, compose, caplog):
    root = tmp_path / "small"
    write_small_folder(root)
    cache = tmp_path / "cache"
    settings = ["data.channels=1", "data.image_size=16", f"data.cache_dir={cache}"]

    def prepare(*extra):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="src.data.image_cache"):
            dm = image_folder(compose, root, *settings, *extra)
            dm.prepare_data()
        return dm, "Decoding 20 images" in caplog.text

    dm, decoded = prepare()
    assert decoded and sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]
    dm.setup("fit")
    assert dm.train_split.inputs.shape[1:] == (1, 16, 16) and dm.train_split.inputs.dtype == torch.uint8
    first = sorted(cache.iterdir())

    _, decoded = prepare()
    assert not decoded and sorted(cache.iterdir()) == first  # read, not rebuilt

    stat = os.stat(root / "a" / "3.png")
    os.utime(root / "a" / "3.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: rebuilt
    _, decoded = prepare()
    assert decoded and len(list(cache.iterdir())) == 2 and sorted(cache.iterdir()) != first  # the old one is gone

    _, decoded = prepare("data.image_size=[12,10]")
    assert decoded
    dm = image_folder(compose, root, *settings[:1], f"data.cache_dir={cache}", "data.image_size=[12,10]")
    dm.setup("fit")
    assert dm.test_split.inputs.shape[1:] == (1, 12, 10)


def test_an_unreadable_image_stops_the_run_or_is_skipped_and_listed(tmp_path, compose, caplog):
    import lightning as L

    root = tmp_path / "small"
    write_small_folder(root)
    broken = root / "b" / "broken.png"
    broken.write_bytes((root / "b" / "0.png").read_bytes()[:60])  # a truncated PNG
    settings = ["data.channels=1", "data.image_size=16", f"data.cache_dir={tmp_path / 'cache'}"]
    for loader in ("tensor", "dataloader"):
        dm = image_folder(compose, root, *settings, f"data.loader={loader}")
        with pytest.raises(UserError, match=rf"^{broken} is not a readable image \(.*\); replace or delete it, or set "
                                            r"data.skip_bad_images=true"):
            dm.prepare_data()

    run = tmp_path / "run_folder"
    for loader in ("tensor", "dataloader"):
        dm = image_folder(compose, root, *settings, f"data.loader={loader}", "data.skip_bad_images=true",
                          "data.num_workers=0")
        dm.trainer = L.Trainer(default_root_dir=str(run), logger=False, enable_progress_bar=False)
        with caplog.at_level(logging.WARNING):
            dm.prepare_data()
            dm.setup("fit")
        assert "1 unreadable image(s)" in caplog.text
        listed = (run / "skipped_images.txt").read_text().splitlines()
        assert listed[0] == "file\treason" and listed[1].startswith(f"{broken}\t") and len(listed) == 2
        assert len(dm.train_split) + len(dm.val_split) + len(dm.test_split) == 20  # 21 files, one left out
        assert "b/broken.png" not in dm.train_split.names + dm.val_split.names + dm.test_split.names


def test_every_folder_mistake_is_one_sentence(tmp_path, compose):
    from src.data.image_folder_listing import list_images

    with pytest.raises(UserError, match=r"data.root=.*nowhere is not a folder; pass data.root=DIR, a folder with one "
                                        r"sub-folder of images per class"):
        list_images(tmp_path / "nowhere")
    root = tmp_path / "small"
    write_small_folder(root)
    (root / "empty").mkdir()
    with pytest.raises(UserError, match=r"the class folder .*empty holds no images \(.png, .jpg"):
        list_images(root)
    shutil.rmtree(root / "empty")
    shutil.move(root / "b", tmp_path / "b")
    with pytest.raises(UserError, match=r"holds one class folder \(a/\), but classification needs at least two"):
        list_images(root)
    shutil.move(tmp_path / "b", root / "b")
    shutil.copy(root / "a" / "0.png", root / "stray.png")
    with pytest.raises(UserError, match=r"holds images outside any class folder \(stray.png\)"):
        list_images(root)
    os.remove(root / "stray.png")

    split = tmp_path / "split"
    shutil.copytree(root, split / "train")
    (split / "test" / "c").mkdir(parents=True)
    shutil.copy(root / "a" / "0.png", split / "test" / "c" / "0.png")
    with pytest.raises(UserError, match=r"test has class folder\(s\) c that .*train lacks"):
        list_images(split)
    with user_error(r"data.channels must be 1 \(grey\) or 3 \(RGB\), got 2"):
        image_folder(compose, root, "data.channels=2")
    with user_error(r"data.image_size must be a positive integer, \[height, width\] or model"):
        image_folder(compose, root, "data.image_size=[0,4]")
    with user_error(r"need data.loader=dataloader; with the tensor loader use batched ones"):
        image_folder(compose, root, "data.loader=tensor", "data.horizontal_flip=0.5")
    with user_error(r"data.image_size=model takes the input size of a timm model"):
        image_folder(compose, root, "data.image_size=model")


def test_five_formats_decode_and_predict_resizes_exactly_as_the_cache(photos, compose):
    from PIL import Image

    from src.inference.images import load_image

    root, originals = photos
    dm = image_folder(compose, root, "data.image_size=[48,64]")
    dm.prepare_data()
    dm.setup("fit")
    names = dm.train_split.names + dm.val_split.names + dm.test_split.names
    assert {Path(n).suffix for n in names} == {".jpg", ".png", ".bmp", ".webp", ".tiff"}
    assert dm.class_names == sorted(originals)
    checked = 0
    for split in (dm.train_split, dm.val_split, dm.test_split):
        for i, name in enumerate(split.names):
            if name.endswith(".jpg") and Path(name).stem in originals:  # a 427x640 photo, as shipped
                with Image.open(root / name) as image:
                    assert image.size == (640, 427)
                from_predict = load_image(root / name, (3, 48, 64))  # what src.predict feeds the model
                assert torch.equal(from_predict, split.inputs[i].float())
                checked += 1
    assert checked == 2

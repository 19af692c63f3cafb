"""Real data written in the layouts users bring: Fashion-MNIST images as PNG class folders, scikit-learn's
two photos as JPEG/PNG/BMP/WebP/TIFF files, and tables as CSV files."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(
    not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian's dataset-fashion-mnist ({FASHION_DIR}) is not installed",
)
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def fashion_test_split() -> tuple[np.ndarray, np.ndarray]:
    """The official Fashion-MNIST test split: uint8 images (10000, 28, 28) and labels (10000,)."""
    with gzip.open(FASHION_DIR / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION_DIR / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
    return images, labels


def fashion_folder_name(label: int) -> str:
    """"0_T-shirt-top": sorted like the labels, readable, and a valid folder name."""
    return f"{label}_{FASHION_CLASSES[label].replace('/', '-').replace(' ', '-')}"


def write_fashion_pngs(root: Path, images: np.ndarray, labels: np.ndarray, first: int = 0) -> None:
    """One grey PNG per image in root/<label folder>/<position>.png (positions zero-padded: sorted = given order)."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / fashion_folder_name(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(folder / f"{first + i:05d}.png")


PHOTO_FORMATS = (("png", "PNG"), ("jpg", "JPEG"), ("bmp", "BMP"), ("webp", "WEBP"), ("tiff", "TIFF"))


def write_photo_folder(root: Path) -> dict[str, list[Path]]:
    """scikit-learn's two 427x640 photos as an image folder with train/ and test/: train/<photo>/ holds the
    original JPEG and crops in every format; test/ holds two crops under both class names (so that one of
    each pair of identical test images is always predicted wrong). Returns {class: its original JPEG}."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    names = [Path(f).stem for f in photos.filenames]  # china, flower
    originals = {}
    for name, path, pixels in zip(names, photos.filenames, photos.images):
        train = root / "train" / name
        train.mkdir(parents=True, exist_ok=True)
        original = train / f"{name}.jpg"
        original.write_bytes(Path(path).read_bytes())  # the file exactly as shipped
        originals[name] = original
        image = Image.fromarray(pixels)
        for k in range(10):
            suffix, fmt = PHOTO_FORMATS[k % len(PHOTO_FORMATS)]
            left, top = 30 * k, 20 * k
            image.crop((left, top, left + 320, top + 240)).save(train / f"crop{k}.{suffix}", fmt)
    for name, pixels in zip(names, photos.images):
        crop = Image.fromarray(pixels).crop((100, 100, 420, 340))
        for label in names:  # the same image under both classes
            folder = root / "test" / label
            folder.mkdir(parents=True, exist_ok=True)
            crop.save(folder / f"{name}_crop.png")
    return originals


def write_sklearn_csv(path: Path, name: str) -> str:
    """scikit-learn's wine or breast-cancer table as a CSV file with a text target column; returns its name."""
    from sklearn import datasets

    bunch = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}[name](as_frame=True)
    frame = bunch.frame.copy()
    frame["label"] = [str(bunch.target_names[t]) for t in frame.pop("target")]
    frame.to_csv(path, index=False)
    return "label"


def penguins_csv() -> Path:
    """The `palmerpenguins` package's penguins.csv (species, island and sex as text, missing values)."""
    palmerpenguins = pytest.importorskip("palmerpenguins")
    return Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"


@contextmanager
def user_error(pattern: str) -> Iterator[None]:
    """The block fails with a UserError (however wrapped, e.g. by a config interpolation) matching `pattern`,
    as the command line would print it."""
    from src.errors import explain

    with pytest.raises(Exception) as info:
        yield
    error = explain(info.value)
    assert error is not None, repr(info.value)
    assert re.search(pattern, str(error)), str(error)


def own_data(tmp_path: Path, group: str, choice: str | None) -> list[str]:
    """The overrides a choice that reads the user's own data needs: a tiny image folder or table to read."""
    if (group, choice) in (("data", "image_folder"), ("experiment", "finetune_image_folder")):
        from PIL import Image

        for label in ("a", "b"):
            (tmp_path / "images" / label).mkdir(parents=True, exist_ok=True)
            for i in range(4):
                Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(tmp_path / "images" / label / f"{i}.png")
        return [f"data.root={tmp_path / 'images'}"]
    if (group, choice) == ("data", "shards"):  # the description src.shard writes (config values come from it)
        from src.data.shard_format import FORMAT, VERSION

        (tmp_path / "shards").mkdir(exist_ok=True)
        meta = {"format": FORMAT, "version": VERSION, "name": "tiny", "class_names": ["a", "b"],
                "input_shape": [3, 8, 8], "image_format": "png", "normalize": None, "samples": {}, "source": {}}
        (tmp_path / "shards" / "shards.json").write_text(json.dumps(meta))
        return [f"data.root={tmp_path / 'shards'}"]
    if (group, choice) == ("data", "csv"):
        (tmp_path / "table.csv").write_text("x,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(20)))
        return [f"data.path={tmp_path / 'table.csv'}", "data.target=y"]
    if (group, choice) == ("data", "hf"):  # a Hub layout: Parquet under data/, written by the datasets library
        from datasets import ClassLabel, Dataset, Features, Image
        from PIL import Image as PILImage

        features = Features({"image": Image(), "label": ClassLabel(names=["a", "b"])})
        rows = {"image": [PILImage.new("RGB", (8, 8), (60 * i, 0, 0)) for i in range(8)], "label": [0, 1] * 4}
        (tmp_path / "hub" / "data").mkdir(parents=True, exist_ok=True)
        Dataset.from_dict(rows, features=features).to_parquet(tmp_path / "hub" / "data" / "train-00000.parquet")
        return [f"data.path={tmp_path / 'hub'}"]
    return []


def write_fashion_classes(root: Path, classes: list[int], per_class: int, skip: int = 0) -> list[Path]:
    """`per_class` real Fashion-MNIST test images of each of `classes` (after skipping `skip` of each) as PNGs in
    root/<label folder>/; returns the files written."""
    images, labels = fashion_test_split()
    written = []
    for label in classes:
        for i in np.flatnonzero(labels == label)[skip:skip + per_class].tolist():
            write_fashion_pngs(root, images[i:i + 1], labels[i:i + 1], first=i)
            written.append(root / fashion_folder_name(label) / f"{i:05d}.png")
    return written

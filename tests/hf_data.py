"""Real Hugging Face dataset layouts written with the `datasets` library: Fashion-MNIST PNGs as an `Image` +
`ClassLabel` Parquet set (beside the same PNGs as an image folder), the penguins table, a train-only set, and
the library's own cache of a set, as `load_dataset(<Hub id>)` leaves it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.own_data import fashion_folder_name, fashion_test_split, write_fashion_pngs

FASHION_CLASSES = (0, 1, 7, 8)  # T-shirt, trouser, sneaker, bag


def fashion_rows(per_class: int, skip: int = 0) -> tuple[np.ndarray, np.ndarray]:
    images, labels = fashion_test_split()
    chosen = np.concatenate([np.flatnonzero(labels == c)[skip:skip + per_class] for c in FASHION_CLASSES])
    return images[chosen], labels[chosen]


def write_fashion(root: Path, train_per_class: int = 60, test_per_class: int = 20) -> tuple[Path, Path]:
    """(an image folder root/folder with train/ and test/, the same PNGs as a Hub layout root/hub/data/*.parquet)."""
    from datasets import ClassLabel, Dataset, Features, Image

    folder, hub = root / "folder", root / "hub"
    names = [fashion_folder_name(c) for c in FASHION_CLASSES]
    features = Features({"image": Image(), "label": ClassLabel(names=names)})
    for split, skip, count in (("train", 0, train_per_class), ("test", train_per_class, test_per_class)):
        images, labels = fashion_rows(count, skip)
        write_fashion_pngs(folder / split, images, labels, first=skip * 100)
        # the rows in the image folder's order: class folders sorted, then file names
        files = sorted((folder / split).glob("*/*.png"), key=lambda p: (p.parent.name, p.name))
        rows = {"image": [{"bytes": p.read_bytes(), "path": None} for p in files],
                "label": [names.index(p.parent.name) for p in files]}
        (hub / "data").mkdir(parents=True, exist_ok=True)
        Dataset.from_dict(rows, features=features).to_parquet(hub / "data" / f"{split}-00000-of-00001.parquet")
    return folder, hub


def write_penguins(root: Path) -> Path:
    """The penguins table (species as a ClassLabel; island and sex as text; NaN rows dropped), train/test."""
    from datasets import ClassLabel, Dataset
    from palmerpenguins import load_penguins

    frame = load_penguins().dropna().reset_index(drop=True)
    species = sorted(frame["species"].unique())
    dataset = Dataset.from_pandas(frame, preserve_index=False).cast_column("species", ClassLabel(names=species))
    parts = dataset.train_test_split(test_size=0.25, seed=0, stratify_by_column="species")
    (root / "data").mkdir(parents=True, exist_ok=True)
    for split, part in parts.items():
        part.to_parquet(root / "data" / f"{split}-00000-of-00001.parquet")
    return root


def write_train_only(root: Path, per_class: int = 40) -> Path:
    """A saved DatasetDict (`save_to_disk`) with only a train split, integer labels (no ClassLabel)."""
    from datasets import Dataset, DatasetDict, Features, Image, Value

    images, labels = fashion_rows(per_class)
    from PIL import Image as PILImage

    rows = {"img": [PILImage.fromarray(x, "L") for x in images], "labels": [int(v) for v in labels]}
    features = Features({"img": Image(), "labels": Value("int64")})
    DatasetDict({"train": Dataset.from_dict(rows, features=features)}).save_to_disk(str(root))
    return root


def cache_as_hub_id(hub: Path, dataset_id: str, cache_dir: Path) -> Path:
    """Build the library's cache of the Parquet set `hub` as `load_dataset("<dataset_id>")` leaves it after a
    download, with the library's Parquet builder: HF_DATASETS_CACHE/<owner>___<name>/default/0.0.0/<revision>/
    holding <name>-<split>.arrow (no owner: <name>/...); returns it."""
    from datasets.data_files import DataFilesDict
    from datasets.packaged_modules.parquet.parquet import Parquet

    owner, _, name = dataset_id.rpartition("/")
    files = DataFilesDict.from_patterns({"train": ["data/train-*"], "test": ["data/test-*"]}, base_path=str(hub))
    builder = Parquet(cache_dir=str(cache_dir), dataset_name=name, data_files=files, hash="0123abcd",
                      config_id="default")
    builder.download_and_prepare()
    if not owner:
        return Path(builder.cache_dir)
    (cache_dir / name).rename(cache_dir / f"{owner}___{name}")  # the folder of a namespaced id
    return cache_dir / f"{owner}___{name}" / Path(builder.cache_dir).relative_to(cache_dir / name)

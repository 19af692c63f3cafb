"""`data=image_folder data.labels_file=labels.csv`: images with several labels each. The CSV has the columns
`file` (the image's path inside data.root) and `labels` (its labels separated by `|`); the label names are the
distinct labels of the file, sorted. The images lie anywhere under data.root (class folders are not needed),
or under train/, val/ and test/ folders, which are then the splits; missing splits are carved at random
(seeded by data.split_seed; a stratified split needs one class per image). Every image needs a row; a row
without labels needs data.allow_no_label=true.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data.image_folder import ImageFolderDataModule
from src.data.image_folder_listing import FolderListing, _is_image
from src.data.multilabel import MODULE, label_matrix, random_split, read_labels_file
from src.data.splits import Split
from src.errors import require

log = logging.getLogger(__name__)
PARTS = ("train", "val", "test")


def list_labelled_images(root: str | Path, labels_file: str, allow_no_label: bool) -> tuple[FolderListing, np.ndarray]:
    """(the listing of every image under `root`, label names as its classes; (N, L) 0/1 targets)."""
    root = Path(str(root)).expanduser()
    require(root.is_dir(), f"data.root={root} is not a folder; give the folder that holds the images.")
    labels = read_labels_file(labels_file, root)
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        where = Path(dirpath).relative_to(root).as_posix()
        files += [f if where == "." else f"{where}/{f}" for f in sorted(filenames) if _is_image(f)]
    require(bool(files), f"{root} holds no images; put the images of data.labels_file under it.")
    unlabelled = [f for f in files if f not in labels]
    require(not unlabelled, f"{root / unlabelled[0] if unlabelled else root} has no labels in {labels_file} "
                            f"({len(unlabelled)} image(s) without a row); add a row (file,labels) for every image.")
    if missing := [f for f in labels if f not in set(files)]:
        log.warning("%d row(s) of %s name no image under %s (first: %s); left out.", len(missing), labels_file, root,
                    missing[0])
    names, matrix = label_matrix([labels[f] for f in files], files, allow_no_label, source=f" in {labels_file}")
    split_dirs = any((root / p).is_dir() for p in PARTS)
    parts = [f.split("/", 1)[0] if split_dirs and f.split("/", 1)[0] in PARTS else "all" for f in files]
    require(not split_dirs or "train" in parts, f"{root} has val/ or test/ folders but no train/ folder of images.")
    return FolderListing(root, names, files, [0] * len(files), parts), matrix


def config_value(key: str, data: Any) -> Any:
    if key == "data_module":
        return "src.data.multilabel_images.MultiLabelImageFolderDataModule"
    if key == "task_model":
        return MODULE
    return len(list_labelled_images(data.root, data.labels_file, data.get("allow_no_label", False))[0].classes)


class MultiLabelImageFolderDataModule(ImageFolderDataModule):
    """An image folder with a labels file (module docstring); otherwise as `ImageFolderDataModule`."""

    def __init__(self, root: str, labels_file: str, allow_no_label: bool = False, **kwargs: Any) -> None:
        require(not kwargs.get("num_folds"), "data.num_folds needs one class per image to stratify its folds; images "
                                             "with several labels validate on data.val_fraction instead.")
        self.labels_file, self.allow_no_label = str(labels_file), bool(allow_no_label)
        super().__init__(root, **kwargs)

    def list_images(self, root: str) -> FolderListing:
        self.listing, self.label_targets = list_labelled_images(root, self.labels_file, self.allow_no_label)
        return self.listing

    def load(self) -> tuple[Split, Split, Split, list[str]]:
        images, bad = self._read()
        if bad and not self.skip_bad_images:
            self._refuse(bad)
        if bad:
            self._report_skipped(bad)
        usable = np.ones(len(self.paths), dtype=bool)
        usable[[i for i, _ in bad]] = False
        parts = np.array(self.listing.parts)
        train, val, test = (np.flatnonzero(np.isin(parts, names) & usable) for names in (("train", "all"), ("val",),
                                                                                         ("test",)))
        require(len(train) > 0, f"{self.root} has no readable training images.")
        if not len(test):
            keep, held = random_split(len(train), self.test_fraction, self.split_seed)
            train, test = train[keep], train[held]
        if not len(val):
            keep, held = random_split(len(train), self.val_fraction, self.split_seed)
            train, val = train[keep], train[held]

        def split(index: np.ndarray) -> Split:
            inputs = torch.from_numpy(np.ascontiguousarray(images[index])) if images is not None \
                else torch.from_numpy(index)  # the per-sample path: positions in self.paths
            return Split(inputs, torch.from_numpy(self.label_targets[index]),
                         [self.listing.files[i] for i in index.tolist()])

        return split(train), split(val), split(test), list(self.class_names)

"""`data=image_folder data.labels_file=labels.csv`: images with several labels each. The CSV has the columns
`file` (the image's path inside data.root) and `labels` (its labels separated by `|`); the label names are the
distinct labels of the file, sorted. The images lie anywhere under data.root (class folders are not needed),
or under train/, val/ and test/ folders, which are then the splits; missing splits are carved at random
(seeded by data.split_seed; validation is fold data.fold of a seeded data.num_folds-fold split when set; a
stratified split needs one class per image). Every image needs a row; a row
without labels needs data.allow_no_label=true.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from src.data.image_folder import ImageFolderDataModule
from src.data.image_folder_listing import FolderListing
from src.data.multilabel import list_labelled_images, random_split
from src.data.multilabel_folds import LabelSetFolds
from src.data.splits import Split
from src.errors import require


class MultiLabelImageFolderDataModule(LabelSetFolds, ImageFolderDataModule):
    """An image folder with a labels file (module docstring); otherwise as `ImageFolderDataModule`."""

    def __init__(self, root: str, labels_file: str, allow_no_label: bool = False, **kwargs: Any) -> None:
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
        require(not (len(val) and self.fold_count), f"data.num_folds carves validation from the training images, but "
                                                    f"{self.root} has a val/ folder; drop data.num_folds or val/.")
        if not len(val):
            keep, held = self.carve_validation(len(train))
            train, val = train[keep], train[held]

        def split(index: np.ndarray) -> Split:
            inputs = torch.from_numpy(np.ascontiguousarray(images[index])) if images is not None \
                else torch.from_numpy(index)  # the per-sample path: positions in self.paths
            return Split(inputs, torch.from_numpy(self.label_targets[index]),
                         [self.listing.files[i] for i in index.tolist()])

        return split(train), split(val), split(test), list(self.class_names)

"""`data=image_folder data.root=DIR`: your own images, in torchvision's ImageFolder layout.

The folder's layout and its listing: `src/data/image_folder_listing.py`; the settings read before any
image (size, channels, normalisation, the config's values): `src/data/image_folder_settings.py`.
Every image is decoded to grey or RGB (`channels`) and resized to `image_size` by one rule, the one
`src.predict` applies to new images.

Two loaders. `tensor`: the images are decoded once into a uint8 cache on disk (`src/data/image_cache.py`,
in `prepare_data`, with a progress bar), then served by the whole-tensor path of the built-in data
sets (batched `augment=` transforms, on the GPU when it fits). `dataloader`: files are decoded per
sample in worker processes with optional torchvision.transforms.v2 augmentations
(`src/data/image_file_dataset.py`), for sets whose decoded images do not fit in memory. `auto`
(the config's default) picks `tensor` when the decoded images take at most `max_memory_fraction`
of the machine's memory.

An unreadable image stops the run before training, naming the file, unless `skip_bad_images`:
then it is left out with a warning and every skipped file is listed in `skipped_images.txt` in
the run folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data import image_cache
from src.data.batch_transforms import Normalize
from src.data.image_datasets import channel_stats
from src.data.image_file_dataset import ImageFileDataset, SampleAugment, check_sample_augment
from src.data.image_files import read_images
from src.data.image_folder_listing import list_images
from src.data.image_folder_settings import check_channels, image_size_of, memory_bytes, normalisation_of
from src.data.in_memory import InMemoryDataModule
from src.data.sample_loader import ResumableDataLoader, resumable_loader
from src.data.splits import Split, stratified_split
from src.data.stratify import check_stratifiable
from src.errors import UserError, require

log = logging.getLogger(__name__)

STATS_SAMPLE = 2000  # training images decoded to fit mean/std on the per-sample path


class ImageFolderDataModule(InMemoryDataModule):
    """Images from class folders, split, cached and served as the built-in image sets are (module docstring)."""

    def __init__(
        self,
        root: str,
        image_size: int | Sequence[int] | str = 64,
        channels: int = 3,
        mean: Sequence[float] | str | None = None,
        std: Sequence[float] | str | None = None,
        pretrained_model: str | None = None,
        test_fraction: float = 0.1,
        cache_dir: str | None = None,
        skip_bad_images: bool = False,
        max_memory_fraction: float = 0.5,
        decode_workers: int | None = None,
        random_resized_crop: Sequence[float] | None = None,
        horizontal_flip: float = 0.0,
        auto_augment: str | None = None,
        color_jitter: float = 0.0,
        loader: str = "auto",
        labels_file: str | None = None,
        allow_no_label: bool = False,
        task_model: str | None = None,
        **kwargs: Any,
    ) -> None:
        """`labels_file`, `allow_no_label`: images with several labels (src/data/multilabel_images.py);
        `task_model`: the model class of the task (read by the model config)."""
        self.channels = check_channels(channels)
        self.size = image_size_of(image_size, pretrained_model)
        shape = [self.channels, *self.size]
        require(list(kwargs.get("input_shape") or []) == shape,
                f"data.input_shape is {list(kwargs.get('input_shape') or [])} but data.channels and data.image_size "
                f"give {shape}; leave data.input_shape to the config (${{image_folder:input_shape}}).")
        require(isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1,
                f"data.test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}.")
        require(isinstance(max_memory_fraction, (int, float)) and 0 < max_memory_fraction <= 1,
                f"data.max_memory_fraction must be in (0, 1], got {max_memory_fraction!r}.")
        require(loader in ("auto", "tensor", "dataloader"),
                f"data.loader must be auto, tensor (decoded once into a cache) or dataloader (per sample), "
                f"got {loader!r}.")
        check_sample_augment(random_resized_crop, horizontal_flip, auto_augment, color_jitter)
        self.listing = self.list_images(root)
        self.mean = normalisation_of(mean, "mean", pretrained_model, self.channels)
        self.std = normalisation_of(std, "std", pretrained_model, self.channels)
        decoded = len(self.listing.files) * int(np.prod(shape))
        if loader == "auto":
            ram = memory_bytes()
            loader = "tensor" if ram is None or decoded <= max_memory_fraction * ram else "dataloader"
            log.info("data.loader=auto: %s (%d images take %.1f MiB decoded; data.max_memory_fraction=%s of %s).",
                     loader, len(self.listing.files), decoded / 2**20, max_memory_fraction,
                     f"{ram / 2**30:.0f} GiB" if ram else "unknown memory")
        sample_augment = bool(random_resized_crop or horizontal_flip or auto_augment or color_jitter)
        require(loader == "dataloader" or not sample_augment,
                "data.random_resized_crop, horizontal_flip, auto_augment and color_jitter augment images one by one "
                "and need data.loader=dataloader; with the tensor loader use batched ones such as augment=flip_crop.")
        require(len(self.listing.classes) == kwargs.get("num_classes"),
                f"data.num_classes is {kwargs.get('num_classes')} but {self.listing.root} has "
                f"{len(self.listing.classes)} class folders; leave data.num_classes to the config.")
        if loader == "dataloader" and kwargs.get("duplicates", "off") != "off":
            log.info("data.duplicates: the duplicate check reads the decoded-image cache of data.loader=tensor; "
                     "skipped with data.loader=dataloader.")
            kwargs["duplicates"] = "off"
        super().__init__(loader=loader, **kwargs)
        self.root = self.listing.root
        self.test_fraction = float(test_fraction)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.root.parent / ".image_cache"
        self.skip_bad_images = bool(skip_bad_images)
        self.decode_workers = decode_workers
        self.sample_augment_args = (random_resized_crop, horizontal_flip, auto_augment, color_jitter)
        self.class_names = list(self.listing.classes)
        self.paths: list[str] = self.listing.paths()
        self._cache_key = None

    def list_images(self, root: str):
        """The folder's listing (images with a labels file: src/data/multilabel_images.py)."""
        return list_images(root)

    # --- the cache: built in prepare_data (one process per node), read in setup ---------------------------
    def _key(self):
        """The cache key of the listed files, stat'ed once per data module (prepare_data and setup share it)."""
        if self._cache_key is None:
            try:
                self._cache_key = image_cache.cache_key(self.root, self.listing.files, self.channels, self.size)
            except FileNotFoundError as exc:
                raise UserError(f"{exc.filename} was removed while the run started; start the run again.") from exc
        return self._cache_key

    def prepare_data(self) -> None:
        """Decode the images into the cache (tensor loader) or check them (dataloader), unless done before."""
        key = self._key()
        stop = not self.skip_bad_images
        if self.loader == "tensor":
            if image_cache.has_cache(key, self.cache_dir):
                return
            bad = image_cache.build_cache(key, self.cache_dir, self.paths, self.channels, self.size, stop_at_bad=stop,
                                          workers=self.decode_workers)
        else:
            if image_cache.read_checked(key, self.cache_dir) is not None:
                return
            bad = image_cache.check_files(key, self.cache_dir, self.paths, stop_at_bad=stop,
                                          workers=self.decode_workers)
        if bad and stop:
            self._refuse(bad)

    def _refuse(self, bad: list[tuple[int, str]]) -> None:
        position, reason = bad[0]
        raise UserError(f"{self.paths[position]} is not a readable image ({reason}); replace or delete it, or set "
                        "data.skip_bad_images=true to leave unreadable images out (they are then listed in the run "
                        "folder).")

    def _read(self) -> tuple[np.ndarray | None, list[tuple[int, str]]]:
        """(the cached images, memory-mapped, or None on the per-sample path; the unreadable files); builds what
        is missing when used without a Trainer (which would have called prepare_data first)."""
        key = self._key()
        for attempt in range(2):
            if self.loader == "tensor":
                cached = image_cache.read_cache(key, self.cache_dir, mmap=True)
                if cached is not None:
                    return cached.images, cached.bad
            else:
                bad = image_cache.read_checked(key, self.cache_dir)
                if bad is not None:
                    return None, bad
            trainer = getattr(self, "trainer", None)
            require(attempt == 0 and (trainer is None or trainer.world_size == 1),
                    f"the image cache of {self.root} is missing in {self.cache_dir}: prepare_data did not run on this "
                    "node; give data.cache_dir a folder on a disk every node shares.")
            self.prepare_data()
        raise AssertionError("unreachable")

    def _report_skipped(self, bad: list[tuple[int, str]]) -> None:
        trainer = getattr(self, "trainer", None)
        lines = [f"{self.paths[i]}\t{reason}" for i, reason in bad]
        if trainer is not None and trainer.is_global_zero:
            out = Path(trainer.default_root_dir) / "skipped_images.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("file\treason\n" + "\n".join(lines) + "\n")
            where = f"listed in {out}"
        else:
            where = "first: " + "; ".join(lines[:3])
        log.warning("%d unreadable image(s) of %s left out (data.skip_bad_images=true); %s.", len(bad), self.root,
                    where)

    # --- splits -------------------------------------------------------------------------------------
    def load(self) -> tuple[Split, Split | None, Split, list[str]]:
        """The splits, by index first (targets only), then each split's images copied out of the memory-mapped
        cache: memory holds the decoded images once, not the cache plus its splits."""
        images, bad = self._read()
        if bad and not self.skip_bad_images:
            self._refuse(bad)
        if bad:
            self._report_skipped(bad)
        skipped = np.zeros(len(self.paths), dtype=bool)
        skipped[[i for i, _ in bad]] = True
        targets, parts = np.array(self.listing.targets, dtype=np.int64), np.array(self.listing.parts)

        def index_of(*names: str) -> np.ndarray:
            return np.flatnonzero(np.isin(parts, names) & ~skipped)

        train, val, test = index_of("train", "all"), index_of("val"), index_of("test")
        require(len(train) > 0, f"{self.root} has no readable training images.")
        where = f"the training images of {self.root}"
        if not len(test):
            check_stratifiable(targets[train].tolist(), self.class_names, self.test_fraction, None, "test", where)
            rest, held = stratified_split(torch.from_numpy(targets[train]), self.test_fraction, self.split_seed)
            train, test = np.sort(train[rest.numpy()]), np.sort(train[held.numpy()])
        if not len(val):
            check_stratifiable(targets[train].tolist(), self.class_names, self.val_fraction, self.num_folds,
                               "validation", where)
        elif self.num_folds:
            raise UserError(f"data.num_folds carves validation folds from the training images, but {self.root} has a "
                            "val/ folder; remove it (or merge it into train/), or drop data.num_folds.")

        def split(index: np.ndarray) -> Split:
            inputs = torch.from_numpy(np.ascontiguousarray(images[index])) if images is not None \
                else torch.from_numpy(index)  # the per-sample path: positions in self.paths
            return Split(inputs, torch.from_numpy(targets[index]), [self.listing.files[i] for i in index.tolist()])

        return split(train), split(val) if len(val) else None, split(test), list(self.class_names)

    @property
    def file_backed(self) -> bool:
        return self.loader == "dataloader"

    def _check(self, split_name: str, split: Split) -> None:
        if not self.file_backed:
            return super()._check(split_name, split)
        require(len(split) > 0, f"the {self.name} {split_name} split is empty; use a smaller val_fraction.")

    def make_transform(self, train: Split):
        if self.mean is not None and self.std is not None:
            return Normalize(self.mean, self.std)
        if self.file_backed:
            step = max(1, len(train) // STATS_SAMPLE)
            sample = [self.paths[int(i)] for i in train.inputs[::step][:STATS_SAMPLE].tolist()]
            images = torch.from_numpy(read_images(sample, self.channels, self.size, skip_bad=True)[0])
            log.info("mean/std fitted on %d of the %d training images (data.mean/std: null).", len(sample), len(train))
        else:
            images = train.inputs
        fitted_mean, fitted_std = channel_stats(images)
        return Normalize(self.mean or fitted_mean, self.std or fitted_std)

    # --- the per-sample path ----------------------------------------------------------------------------
    def sample_loader(self, split: Split, shuffle: bool, transform, seed: int) -> ResumableDataLoader:
        """The files of `split` decoded per sample, in the seed-and-epoch order that a resumed run repeats."""
        wanted = shuffle and any(self.sample_augment_args)
        augment = SampleAugment(self.channels, self.size, *self.sample_augment_args) if wanted else None
        dataset = ImageFileDataset(self.paths, split.inputs, split.targets, self.channels, self.size, transform,
                                   augment)
        return resumable_loader(dataset, self.batch_size, shuffle, self.num_workers, self.pin_memory, seed)

    def display_inputs(self, split: Split, index: torch.Tensor) -> torch.Tensor:
        if not self.file_backed:
            return super().display_inputs(split, index)

        files = [self.paths[int(i)] for i in split.inputs[index.cpu()].tolist()]
        return torch.from_numpy(read_images(files, self.channels, self.size, skip_bad=True)[0])

"""`data=hf data.path=<Hub id or folder>`: a Hugging Face dataset, served as the built-in data sets are.

Reading the set, its columns and splits: `src/data/hf_source.py`. The splits are the set's own
(`train`, a `validation` split when it has one, `test`); without a test split one is carved
(stratified, `data.test_fraction`), and without a validation split (or with `data.num_folds`) validation
is carved from the training rows (`data.val_fraction`, folds) as for every data set.

An image set is decoded once, by the decoding rule of `data=image_folder` and `src.predict`
(`src/data/image_files.py`: grey or RGB, resized to `image_size`), into the same uint8 cache on disk
(`src/data/image_cache.py`, keyed by the library's fingerprint of each split), then served as
whole-tensor batches with normalisation fitted on the training split. A table set (no `Image`
column): `src/data/hf_table.py`.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data.batch_transforms import Normalize
from src.data.hf_source import display_name, inspect, open_dataset, own_splits, plan_splits, read_rows
from src.data.image_datasets import channel_stats
from src.data.image_folder_settings import check_channels, image_size_of, normalisation_of
from src.data.in_memory import InMemoryDataModule
from src.data.splits import Split
from src.errors import UserError, require

log = logging.getLogger(__name__)


def decode_encoded(items: Sequence[dict], channels: int, size: Sequence[int], skip_bad: bool):
    """(uint8 (N, C, H, W), unreadable [(position, reason)]) of the `Image` column's {bytes, path} values,
    by the decoding rule of `data=image_folder` (worker processes of the cache build run it)."""
    from src.data.image_files import BadImageError, read_image

    out = np.zeros((len(items), channels, int(size[0]), int(size[1])), dtype=np.uint8)
    bad: list[tuple[int, str]] = []
    for i, item in enumerate(items):
        try:
            source = io.BytesIO(item["bytes"]) if item.get("bytes") else item.get("path")
            if source is None:
                raise BadImageError(f"row {i}", "no image bytes")
            out[i] = read_image(source, channels, size)
        except BadImageError as exc:
            if not skip_bad:
                raise
            bad.append((i, exc.reason))
    return out, bad


class HFDataModule(InMemoryDataModule):
    """A Hugging Face dataset's images or table rows (module docstring)."""

    def __init__(
        self,
        path: str,
        name: str | None = None,
        image_key: str | None = None,
        label_key: str | None = None,
        train_split: str = "train",
        val_split: str | None = None,
        test_split: str | None = None,
        image_size: int | Sequence[int] | str = 64,
        channels: int = 3,
        mean: Sequence[float] | str | None = None,
        std: Sequence[float] | str | None = None,
        pretrained_model: str | None = None,
        test_fraction: float = 0.1,
        missing: str = "error",
        cache_dir: str | None = None,
        decode_workers: int | None = None,
        dataset: str | None = None,
        streaming: bool = False,
        shuffle_buffer: int = 10000,
        stats_samples: int = 2048,
        **kwargs: Any,
    ) -> None:
        self.path, self.config_name = str(path), name
        require(isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1,
                f"data.test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}.")
        self.columns = inspect(self.path, name, image_key, label_key, str(train_split), bool(streaming))
        self.is_image = self.columns.image is not None
        if self.is_image:
            self.channels = check_channels(channels)
            self.size = image_size_of(image_size, pretrained_model)
            self.mean = normalisation_of(mean, "mean", pretrained_model, self.channels)
            self.std = normalisation_of(std, "std", pretrained_model, self.channels)
        kwargs.setdefault("name", dataset or display_name(self.path, name))
        super().__init__(**kwargs)
        require(len(self.columns.class_names) == self.num_classes,
                f"data.num_classes is {self.num_classes} but {self.path} has {len(self.columns.class_names)} "
                "classes; leave data.num_classes to the config.")
        self.split_args = (str(train_split), val_split, test_split)
        self.test_fraction, self.missing = float(test_fraction), str(missing)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.decode_workers = decode_workers
        self.class_names = list(self.columns.class_names)
        self.encoder = None
        self.table = None
        self.streaming, self.shuffle_buffer, self.stats_samples = bool(streaming), shuffle_buffer, stats_samples
        self.stream = None  # the streamed splits (src/data/hf_stream.py), when data.streaming=true
        require(isinstance(shuffle_buffer, int) and shuffle_buffer > 0 and isinstance(stats_samples, int)
                and stats_samples > 0, "data.shuffle_buffer and data.stats_samples must be positive integers.")

    # --- splits -----------------------------------------------------------------------------------
    def _plan(self, dataset):
        train, val, test = own_splits(dataset, self.path, *self.split_args)
        if self.num_folds and val:
            log.info("data.num_folds: validation folds are carved from %s; its %s split is not used.", train, val)
            val = None
        rows = read_rows(dataset, self.columns, [s for s in (train, val, test) if s])
        index = plan_splits(rows, train, val, test, self.test_fraction, self.split_seed, self.class_names,
                            f"the {train} split of {self.path}")
        return rows, index

    def _cache_key(self, dataset, rows):
        from src.data.image_cache import RULE_VERSION, CacheKey

        digest = hashlib.sha1(f"hf rule {RULE_VERSION}; channels {self.channels}; size {list(self.size)}; "
                              f"image {self.columns.image}\n".encode())
        for split, a, b in rows.parts:
            fingerprint = getattr(dataset[split], "_fingerprint", None)
            require(fingerprint is not None, f"the {split} split of {self.path} has no fingerprint to cache by.")
            digest.update(f"{split}\t{b - a}\t{fingerprint}\n".encode())
        local = Path(self.path).expanduser()
        where = local.resolve() if local.is_dir() else Path("/hf") / self.path / (self.config_name or "default")
        return CacheKey(where, digest.hexdigest())

    def _cache_folder(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        import datasets

        return Path(datasets.config.HF_DATASETS_CACHE) / "image_cache"

    def prepare_data(self) -> None:
        """Decode the images into the cache, unless done before (a table: nothing to do)."""
        if self.is_image and not self.streaming:
            self._images(build=True)

    # --- streaming (data.streaming=true: src/data/hf_stream.py) ----------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.streaming:
            return super().setup(stage)
        if self.stream is None:
            from src.data.hf_stream import StreamedSplits

            self.stream = StreamedSplits(self)
            self.train_split, self.val_split, self.test_split = (self.stream.split(r) for r in ("train", "val", "test"))
            self.transform = self.stream.fit_normalisation()
            self.train_transform = self.transform
            if self.augment:
                from src.data.batch_transforms import Compose

                self.train_transform = Compose(self.transform, *self.build_augmentations())

    def _loader(self, split, shuffle=False, steps_per_epoch=None, transform=None, limit_steps=None):
        if not self.streaming:
            return super()._loader(split, shuffle, steps_per_epoch, transform, limit_steps)
        import os

        from src.data.hf_stream import StreamBatchLoader

        trainer = getattr(self, "trainer", None)
        require(trainer is None or trainer.world_size == 1, "data.streaming=true runs on one device; set "
                                                            "trainer.devices=1, or data.streaming=false.")
        role = next(r for r in ("train", "val", "test") if getattr(self, f"{r}_split") is split)
        seed = int(os.environ.get("PL_GLOBAL_SEED", self.split_seed)) if shuffle else 0
        return StreamBatchLoader(self.stream, role, self.batch_size, shuffle, seed, self.shuffle_buffer,
                                 transform or self.transform, limit_steps)

    def _images(self, build: bool):
        from src.data import image_cache

        dataset = open_dataset(self.path, self.config_name, revision=None)
        rows, index = self._plan(dataset)
        key = self._cache_key(dataset, rows)
        folder = self._cache_folder()
        cached = image_cache.read_cache(key, folder, mmap=True)
        if cached is None and build:
            from datasets import Image

            items: list[dict] = []
            for split, _, _ in rows.parts:
                raw = dataset[split].select_columns([self.columns.image]).cast_column(self.columns.image,
                                                                                     Image(decode=False))
                items.extend(raw[self.columns.image])
            bad = image_cache.build_cache(key, folder, items, self.channels, self.size, stop_at_bad=True,
                                          workers=self.decode_workers, reader=decode_encoded)
            if bad:
                position, reason = bad[0]
                raise UserError(f"row {rows.names[position]} of {self.path} is not a readable image ({reason}); "
                                "fix or drop that row.")
            cached = image_cache.read_cache(key, folder, mmap=True)
        require(cached is not None, f"the image cache of {self.path} is missing in {folder}: prepare_data did not "
                                    "run on this node; give data.cache_dir a folder on a disk every node shares.")
        return cached.images, rows, index

    def load(self) -> tuple[Split, Split | None, Split, list[str]]:
        if not self.is_image:
            return self._load_table()
        images, rows, index = self._images(build=True)

        def split(at: np.ndarray) -> Split:  # each split's images copied out of the memory-mapped cache
            inputs = torch.from_numpy(np.ascontiguousarray(images[at]))
            return Split(inputs, torch.from_numpy(rows.targets[at]), [rows.names[i] for i in at.tolist()])

        self.rows = rows
        train, val, test = index
        return split(train), split(val) if val is not None else None, split(test), list(self.class_names)

    # --- tables -----------------------------------------------------------------------------------
    def _load_table(self):
        from src.data.hf_table import table_of

        train_split, val_split, test_split = self.split_args
        self.table = table_of(dict(
            path=self.path, name=self.config_name, label_key=self.columns.label, train_split=train_split,
            val_split=val_split, test_split=test_split, missing=self.missing, test_fraction=self.test_fraction,
            val_fraction=self.val_fraction, num_folds=self.num_folds, fold=self.fold, split_seed=self.split_seed))
        rows = self.table.rows

        def split(at: np.ndarray) -> Split:
            return Split(torch.from_numpy(at), torch.from_numpy(rows.targets[at]), [rows.names[i] for i in at])

        val = split(self.table.val) if self.table.val is not None else None
        return split(self.table.train), val, split(self.table.test), list(self.class_names)

    def encode_splits(self, train: Split, val: Split, test: Split) -> tuple[Split, Split, Split]:
        if self.is_image:
            return train, val, test
        from src.data.table_encoding import TableEncoder

        frame, features = self.table.frame, list(self.columns.features)
        self.encoder = TableEncoder.fit(frame.iloc[train.inputs.numpy()], features, self.missing)

        def encode(split: Split, what: str) -> Split:
            x = self.encoder.encode(frame.iloc[split.inputs.numpy()], what=f"the {what} split of {self.path}")
            return Split(torch.from_numpy(x), split.targets, split.names)

        return encode(train, "training"), encode(val, "validation"), encode(test, "test")

    # --- inputs ---------------------------------------------------------------------------------------
    def make_transform(self, train: Split):
        if not self.is_image:
            return None
        if self.mean is not None and self.std is not None:
            return Normalize(self.mean, self.std)
        images = train.inputs
        fitted_mean, fitted_std = channel_stats(images)
        return Normalize(self.mean or fitted_mean, self.std or fitted_std)

    def state_dict(self) -> dict[str, Any]:
        """The base state (class names, normalisation) plus a table's fitted encoding, for `src.predict`."""
        state = super().state_dict()
        if state and self.encoder is not None:
            state["table"] = {**self.encoder.state(), "target": self.columns.label}
        return state

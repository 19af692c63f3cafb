"""`data=shards data.root=DIR_OR_URL`: train from the LitData shards `python -m src.shard` wrote.

Each split is a `litdata.StreamingDataset` served by a `StreamingDataLoader`: every rank and worker reads
its own disjoint share of the chunks, the training order is a function of the run's seed and the epoch,
and remote chunks (s3://) are cached locally in `cache_dir` within `max_cache_size`. An image is decoded
to uint8 (C, H, W), augmented one by one with the per-sample options of `data=image_folder`
(`src/data/image_file_dataset.py`), then normalised with the statistics fitted on the training split
when the shards were written, and the batched `augment=` transforms run on it as a one-image batch,
as on the per-sample path of the in-memory sets (`src/data/sample_loader.py`).

The training loader's state (epoch, samples served per worker) is LitData's `state_dict`, which Lightning
stores in every checkpoint: a run stopped mid-epoch resumes with the samples not served yet. The class
names and normalisation go into checkpoints too (`state_dict` below), so eval, predict and export work
as for any data set.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from litdata import StreamingDataLoader, StreamingDataset

from src.data import object_store  # noqa: F401  (registers LitData's s3:// downloader, in every process)
from src.data import shard_format as fmt
from src.data.batch_transforms import Compose, Normalize
from src.data.image_file_dataset import SampleAugment, check_sample_augment
from src.data.sample_loader import default_num_workers
from src.data.shard_writer import chunk_limit_bytes
from src.data.splits import Split
from src.errors import require


class ShardImages(StreamingDataset):
    """`(transform(augment(image)), label)` for each sample of one split's shards."""

    def __init__(self, input_dir: str, image_format: str, channels: int,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None, augment: SampleAugment | None = None,
                 raw: bool = False, **kwargs: Any) -> None:
        super().__init__(input_dir, **kwargs)
        self.image_format, self.channels = image_format, channels
        self.image_transform, self.augment, self.raw = transform, augment, raw

    def __getitem__(self, index: Any) -> tuple[torch.Tensor, ...]:
        sample = super().__getitem__(index)
        x = fmt.decode_stored_image(sample["image"], self.image_format, self.channels)
        if self.raw:  # as stored, with the sample's name (eval's reports)
            return x, torch.tensor(int(sample["label"])), sample["name"]
        if self.augment is not None:
            x = self.augment.transform_image(x)
        x = self.image_transform(x.unsqueeze(0)).squeeze(0) if self.image_transform is not None else x.float()
        return x, torch.tensor(int(sample["label"]))


class EpochStreamingDataLoader(StreamingDataLoader):
    """LitData's loader, where only the first pass after `load_state_dict` continues the restored epoch.
    LitData clears its restored flag only when a pass runs to its end; Lightning ends a resumed epoch after
    its last batch without asking for more, and LitData would then serve the next epoch in the restored
    epoch's order again."""

    def load_state_dict(self, obj: dict[str, Any]) -> None:
        super().load_state_dict(obj)
        self.continues_restored_epoch = True

    def __iter__(self) -> Any:
        if not getattr(self, "continues_restored_epoch", False):
            self.restore = False  # a new epoch: LitData moves to the next epoch's order
        self.continues_restored_epoch = False
        yield from super().__iter__()


class ShardsDataModule(L.LightningDataModule):
    """Train, validation and test splits streamed from shards (module docstring)."""

    def __init__(
        self,
        root: str,
        name: str,
        num_classes: int,
        input_shape: Sequence[int],
        image_size: int | Sequence[int] | None = None,
        batch_size: int = 128,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        cache_dir: str | None = None,
        max_cache_size: str | int = "50GB",
        random_resized_crop: Sequence[float] | None = None,
        horizontal_flip: float = 0.0,
        auto_augment: str | None = None,
        color_jitter: float = 0.0,
        augment: dict[str, dict | None] | None = None,
    ) -> None:
        super().__init__()
        require(isinstance(batch_size, int) and batch_size > 0,
                f"data.batch_size must be a positive integer, got {batch_size!r}.")
        require(num_workers is None or (isinstance(num_workers, int) and num_workers >= 0),
                f"data.num_workers must be a non-negative integer or null, got {num_workers!r}.")
        check_sample_augment(random_resized_crop, horizontal_flip, auto_augment, color_jitter)
        self.save_hyperparameters(logger=False)
        self.root = str(root).rstrip("/") if fmt.is_remote(root) else str(Path(root).expanduser())
        self.meta = fmt.read_metadata(self.root)
        shape = [int(d) for d in self.meta["input_shape"]]
        if image_size is not None:
            size = [image_size, image_size] if isinstance(image_size, int) else [int(s) for s in image_size]
            require(size == shape[1:],
                    f"the shards in {self.root} hold {shape[1]}x{shape[2]} images but data.image_size is "
                    f"{image_size}; write the shards again at that size (python -m src.shard ... "
                    f"data.image_size={image_size}), or drop data.image_size.")
        require(list(input_shape) == shape,
                f"data.input_shape is {list(input_shape)} but the shards in {self.root} hold images of shape {shape}; "
                "leave data.input_shape to the config (${shards:input_shape}).")
        require(num_classes == len(self.meta["class_names"]),
                f"data.num_classes is {num_classes} but the shards in {self.root} have "
                f"{len(self.meta['class_names'])} classes; leave data.num_classes to the config.")
        self.name, self.num_classes, self.input_shape = name, num_classes, tuple(shape)
        self.class_names = [str(n) for n in self.meta["class_names"]]
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.cache_dir, self.max_cache_size = cache_dir, max_cache_size
        self.max_cache_bytes = chunk_limit_bytes(max_cache_size)
        self.sample_augment_args = (random_resized_crop, horizontal_flip, auto_augment, color_jitter)
        self.augment = {key: spec for key, spec in (augment or {}).items() if spec}
        self.transform = Normalize(**self.meta["normalize"]) if self.meta.get("normalize") else None
        self.datasets: dict[str, ShardImages] = {}
        self._test_split: Split | None = None
        if fmt.is_remote(self.root):  # local shards are read in place, remote chunks pass through the cache
            indexes = [fmt.read_json(fmt.join(self.root, split, "index.json")) or {} for split in fmt.SPLITS]
            largest = max((chunk["chunk_bytes"] for index in indexes for chunk in index.get("chunks", [])), default=0)
            require(self.max_cache_bytes >= largest,
                    f"data.max_cache_size={max_cache_size} is smaller than one chunk of the shards in {self.root} "
                    f"({largest / 1e6:.1f} MB); raise it, or write the shards with a smaller chunk_bytes.")

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        channels, height, width = self.input_shape
        wanted = any(self.sample_augment_args)
        augment = SampleAugment(channels, (height, width), *self.sample_augment_args) if wanted else None
        batched = [instantiate(spec) for spec in self.augment.values()]
        train_transform = Compose(self.transform, *batched) if batched else self.transform
        # The run's seed (set by `seed_everything`): a resumed run draws the same order for every epoch.
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        for split in fmt.SPLITS:
            train = split == "train"
            self.datasets[split] = ShardImages(
                fmt.join(self.root, split), self.meta["image_format"], channels,
                train_transform if train else self.transform, augment if train else None,
                shuffle=train, seed=seed, cache_dir=self._cache(split), max_cache_size=self.max_cache_size,
            )

    def _cache(self, split: str) -> str | None:
        """Where a remote split's chunks are cached (local shards are read in place)."""
        if not fmt.is_remote(self.root):
            return None
        base = Path(self.cache_dir).expanduser() if self.cache_dir else Path.home() / ".cache" / "shards"
        return str(base / hashlib.sha1(self.root.encode()).hexdigest()[:12] / split)

    def _workers(self) -> int:
        return default_num_workers() if self.num_workers is None else self.num_workers

    def _loader(self, split: str) -> EpochStreamingDataLoader:
        require(bool(self.datasets), f"{type(self).__name__}.setup() must run before its loaders are asked for")
        workers = self._workers()
        return EpochStreamingDataLoader(
            self.datasets[split], batch_size=self.batch_size, num_workers=workers,
            pin_memory=torch.cuda.is_available() if self.pin_memory is None else self.pin_memory,
            persistent_workers=workers > 0,
        )

    def train_dataloader(self) -> StreamingDataLoader:
        return self._loader("train")

    def val_dataloader(self) -> StreamingDataLoader:
        return self._loader("val")

    def test_dataloader(self) -> StreamingDataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> StreamingDataLoader:
        return self._loader("test")

    @property
    def test_split(self) -> Split:
        """The test split as src.eval's reports list it (predictions.csv, top losses): the stored images, labels
        and names (an image folder's file names), in the order the test loader serves them. Read once, when asked."""
        if self._test_split is None:
            channels = self.input_shape[0]
            raw = ShardImages(fmt.join(self.root, "test"), self.meta["image_format"], channels, None, raw=True,
                              cache_dir=self._cache("test"), max_cache_size=self.max_cache_size)
            batches = list(EpochStreamingDataLoader(raw, batch_size=self.batch_size, num_workers=self._workers()))
            images, labels, names = zip(*batches)
            self._test_split = Split(torch.cat(images), torch.cat(labels), [n for part in names for n in part])
        return self._test_split

    def display_inputs(self, split: Split, index: torch.Tensor) -> torch.Tensor:
        """The stored uint8 images of `split` at `index` (figures)."""
        return split.inputs[index.cpu()]

    def state_dict(self) -> dict[str, Any]:
        """Class names and normalisation, stored in checkpoints for src.predict and src.export."""
        state: dict[str, Any] = {"class_names": list(self.class_names)}
        if self.transform is not None:
            state["transform"] = self.transform.state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: the shards hold the same names and statistics."""

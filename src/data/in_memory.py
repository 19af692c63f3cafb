"""Base LightningDataModule for data sets that fit in memory, served as whole-tensor batches."""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate

from src.data.batch_transforms import Compose
from src.data.splits import Split, fits_on_device, stratified_fold, stratified_split
from src.data.tensor_loader import TensorBatchLoader
from src.errors import require

log = logging.getLogger(__name__)


class InMemoryDataModule(L.LightningDataModule, ABC):
    """Holds train/val/test as tensors and serves them with `TensorBatchLoader`.

    Validation is carved from the training split (`val_fraction`), or is fold `fold` of a
    stratified `num_folds`-fold split of it (cross-validation; the test split is never touched).
    Subclasses implement `load()` (the raw splits and class names, read only), and may override
    `prepare_data()` (downloads, unzipping, caches: whatever writes files) and `make_transform()`
    (a batched transform fitted on the training split, e.g. normalisation).
    Constructor arguments are plain values, saved in checkpoints so that evaluation can rebuild
    the exact data pipeline.
    """

    def __init__(
        self,
        name: str,
        num_classes: int,
        input_shape: Sequence[int],
        batch_size: int | None = 64,
        val_fraction: float = 0.1,
        split_seed: int = 42,
        steps_per_epoch: int | None = None,
        device: str | None = None,
        augment: dict[str, dict | None] | None = None,
        loader: str = "tensor",
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        num_folds: int | None = None,
        fold: int = 0,
        max_device_fraction: float | None = 0.5,
        duplicates: str = "off",
        duplicate_distance: int | None = 28,
    ) -> None:
        super().__init__()
        require(
            batch_size is None or (isinstance(batch_size, int) and batch_size > 0),
            f"data.batch_size must be a positive integer (or null for full batch), got {batch_size!r}.",
        )
        require(
            isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1,
            f"data.val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}.",
        )
        require(
            steps_per_epoch is None or (isinstance(steps_per_epoch, int) and steps_per_epoch > 0),
            f"data.steps_per_epoch must be a positive integer or null, got {steps_per_epoch!r}.",
        )
        require(
            loader in ("tensor", "dataloader"),
            f"data.loader must be 'tensor' (whole-tensor batches) or 'dataloader' (per-sample), got {loader!r}.",
        )
        require(
            loader == "tensor" or steps_per_epoch is None,
            "data.steps_per_epoch needs data.loader=tensor; set data.steps_per_epoch=null to use the DataLoader.",
        )
        require(
            num_folds is None or (isinstance(num_folds, int) and num_folds >= 2),
            f"data.num_folds must be an integer of at least 2 (or null for one validation split), got {num_folds!r}.",
        )
        require(
            num_folds is None or (isinstance(fold, int) and 0 <= fold < num_folds),
            f"data.fold must be between 0 and data.num_folds - 1 = {(num_folds or 1) - 1}, got {fold!r}.",
        )
        require(
            max_device_fraction is None or (isinstance(max_device_fraction, (int, float)) and max_device_fraction > 0),
            f"data.max_device_fraction must be a positive number (or null for always), got {max_device_fraction!r}.",
        )
        if duplicates != "off":  # the duplicate check's code loads only when it is on
            from src.data.duplicates import check_policy
            check_policy(duplicates, duplicate_distance)
        self.save_hyperparameters(logger=False)  # the loggers get what runs are compared by (src/runs/loggers.py)
        self.name = name
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.steps_per_epoch = steps_per_epoch
        self.device = device
        self.max_device_fraction = max_device_fraction
        self.loader, self.num_workers, self.pin_memory = loader, num_workers, pin_memory
        self.num_folds, self.fold = num_folds, fold
        self.duplicates, self.duplicate_distance = duplicates, duplicate_distance
        self.augment = {name: spec for name, spec in (augment or {}).items() if spec}
        self.class_names: list[str] = [str(i) for i in range(num_classes)]
        self.transform: Callable[[torch.Tensor], torch.Tensor] | None = None  # every split
        self.train_transform: Callable[[torch.Tensor], torch.Tensor] | None = None  # + augmentation
        self.train_split: Split | None = None
        self.val_split: Split | None = None
        self.test_split: Split | None = None

    # --- what a data set provides -------------------------------------------------------------
    @abstractmethod
    def load(self) -> tuple[Split, Split | None, Split, list[str]]:
        """Return (train, val or None to carve it from train, test, class names), reading only: files a data
        set needs on disk are made ready by `prepare_data()`."""

    def make_transform(self, train: Split) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """A batched transform fitted on the training split (default: none)."""
        return None

    def encode_splits(self, train: Split, val: Split, test: Split) -> tuple[Split, Split, Split]:
        """The splits once validation is carved, turned into model inputs with statistics of the
        training split (default: unchanged; a table one-hot encodes and standardises here)."""
        return train, val, test

    def display_inputs(self, split: Split, index: torch.Tensor) -> torch.Tensor:
        """The raw inputs of `split` at `index` as figures show them (images: uint8 (n, C, H, W))."""
        return split.inputs[index.to(split.inputs.device)]

    def build_augmentations(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Batched training-only augmentations from `augment` ({name: `_target_` config}, in order;
        a null entry is off), applied after normalisation to float batches (N, C, H, W)."""
        return [instantiate(spec) for spec in self.augment.values()]

    # --- Lightning hooks ----------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Everything that writes files: download, unzip, extract, build caches (default: nothing to do).

        Lightning calls it once per node (on local rank 0, the other processes wait) before `setup()`
        runs on every process, so under DDP no two processes write the same file. `setup()` (`load()`)
        only reads what this left on disk. Code outside a Trainer calls `prepare_data()`, then `setup()`.
        """

    def setup(self, stage: str | None = None) -> None:
        if self.train_split is not None:
            return
        train, val, test, self.class_names = self.load()
        if self.num_folds:
            require(
                val is None,
                f"data.num_folds needs a validation split carved from the training data, but {self.name} has a "
                "fixed one (e.g. validate_on_test); switch that off or drop data.num_folds.",
            )
            if train.names is None:  # out-of-fold predictions name a sample by its place in the training split
                train = Split(train.inputs, train.targets, [str(i) for i in range(len(train))])
            keep, held = stratified_fold(train.targets, self.num_folds, self.fold, self.split_seed)
            train, val = train.subset(keep), train.subset(held)
        elif val is None:
            keep, held = stratified_split(train.targets, self.val_fraction, self.split_seed)
            train, val = train.subset(keep), train.subset(held)
        train, val, test = self.encode_splits(train, val, test)
        if self.duplicates != "off":  # duplicates.csv goes to the run folder (the first process's)
            trainer = getattr(self, "trainer", None)
            out_dir = trainer.default_root_dir if trainer is not None and trainer.is_global_zero else None
            from src.data.duplicates import screen_splits
            train, val, test = screen_splits(self.name, train, val, test, self.duplicates, self.duplicate_distance,
                                             out_dir)
        for split_name, split in (("train", train), ("val", val), ("test", test)):
            self._check(split_name, split)
        self.transform = self.make_transform(train)
        self.train_transform = Compose(self.transform, *self.build_augmentations()) if self.augment else self.transform
        device = self._target_device(train, val, test) if self.loader == "tensor" else torch.device("cpu")
        self.train_split, self.val_split, self.test_split = train.to(device), val.to(device), test.to(device)

    def train_dataloader(self) -> TensorBatchLoader:
        trainer = getattr(self, "trainer", None)
        limit = getattr(trainer, "limit_train_batches", None)
        # `trainer.limit_train_batches=N` (also fast_dev_run, overfit_batches) cuts the loader's epoch to N batches:
        # N optimizer steps, also when a module takes several steps per call (src/models/multi_step.py).
        limit_steps = limit if type(limit) is int else None
        overfit = bool(trainer is not None and trainer.overfit_batches)  # the same first batches every epoch
        return self._loader(
            self.train_split, shuffle=not overfit, steps_per_epoch=self.steps_per_epoch,
            transform=self.train_transform, limit_steps=limit_steps,
        )

    def val_dataloader(self) -> TensorBatchLoader:
        return self._loader(self.val_split)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader(self.test_split)

    def predict_dataloader(self) -> TensorBatchLoader:
        return self._loader(self.test_split)

    # --- checkpoint state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Stored by Lightning in every checkpoint (under the class name): the class names and the
        fitted input transform (e.g. Normalize's mean/std/max_value), as plain values, so that
        `src.predict` preprocesses new inputs exactly as training did without loading the data set."""
        if self.train_split is None:
            return {}
        state: dict[str, Any] = {"class_names": [str(n) for n in self.class_names]}
        describe = getattr(self.transform, "state", None)
        if callable(describe):
            state["transform"] = describe()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: `setup()` recomputes the same statistics from the data (the stored state
        is for readers without the data set, src/inference/preprocessing.py)."""

    # --- helpers ------------------------------------------------------------------------------
    def _loader(self, split: Split | None, shuffle: bool = False, steps_per_epoch: int | None = None,
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                limit_steps: int | None = None):
        if split is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its loaders are asked for")
        # The run's seed (set by `seed_everything`), not a draw from the global RNG: a resumed run restores
        # that RNG before the loaders exist and must still replay the same data order.
        seed = int(os.environ.get("PL_GLOBAL_SEED", self.split_seed)) if shuffle else 0
        if self.loader == "dataloader":
            return self.sample_loader(split, shuffle, transform or self.transform, seed)
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return TensorBatchLoader(
            split.inputs, split.targets, self.batch_size, shuffle=shuffle, rank=rank, world_size=world,
            steps_per_epoch=steps_per_epoch, transform=transform or self.transform, seed=seed,
            limit_steps=limit_steps,
        )

    def sample_loader(self, split: Split, shuffle: bool, transform: Callable[[torch.Tensor], torch.Tensor] | None,
                      seed: int):
        """The per-sample `DataLoader` of `data.loader=dataloader` (a data set whose samples are read
        from files while training overrides this)."""
        from src.data.sample_loader import sample_loader
        return sample_loader(split.inputs, split.targets, self.batch_size, shuffle, transform, self.num_workers,
                             self.pin_memory, seed)

    def _target_device(self, *splits: Split) -> torch.device:
        """`data.device`, else the training device; on a GPU only if the splits take at most
        `max_device_fraction` of its free memory (else they stay on the CPU and batches move per step)."""
        if self.device is not None:
            return torch.device(self.device)
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if device.type == "cuda" and splits:
            data_bytes = sum(t.numel() * t.element_size() for s in splits for t in (s.inputs, s.targets))
            free_bytes, _ = torch.cuda.mem_get_info(device)
            if not fits_on_device(data_bytes, free_bytes, self.max_device_fraction):
                log.warning("%s: %.0f MiB of data exceed data.max_device_fraction=%s of the %.0f MiB free on %s; "
                         "keeping it on the CPU (batches move per step).", self.name, data_bytes / 2**20,
                         self.max_device_fraction, free_bytes / 2**20, device)
                return torch.device("cpu")
        return device

    def _check(self, split_name: str, split: Split) -> None:
        shape = tuple(split.inputs.shape[1:])
        require(
            shape == self.input_shape,
            f"data.input_shape is {list(self.input_shape)} but the {self.name} {split_name} split has "
            f"inputs of shape {list(shape)}; fix data.input_shape in the data config.",
        )
        require(len(split) > 0, f"the {self.name} {split_name} split is empty; use a smaller val_fraction.")
        top = int(split.targets.max())
        require(
            top < self.num_classes,
            f"the {self.name} {split_name} split has class {top} but data.num_classes is "
            f"{self.num_classes}; fix data.num_classes in the data config.",
        )

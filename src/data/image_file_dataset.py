"""The per-sample path of `data=image_folder` (`data.loader=dataloader`): image files decoded one at a
time in DataLoader worker processes, for folders whose decoded images do not fit in memory.

Evaluation images are decoded and resized by the same rule as the cache (`read_image`), so both
loaders give a model the same validation and test inputs. Training images can get per-image
augmentations from `torchvision.transforms.v2`, applied to the decoded uint8 image: a random
resized crop (from the full-resolution image), a horizontal flip, TrivialAugmentWide or
RandAugment, and colour jitter. The batched transform (normalisation, then any `augment=` group)
runs last, on the one-image batch, as in `src.data.sample_loader`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import pil_to_tensor

from src.data.image_files import BadImageError, open_image, read_image
from src.errors import require

AUTO_AUGMENTS = ("trivial", "randaugment")


def check_sample_augment(random_resized_crop: Sequence[float] | None, horizontal_flip: float,
                         auto_augment: str | None, color_jitter: float) -> None:
    """One sentence per bad per-image augmentation setting (checked when the data module is built)."""
    crop = random_resized_crop
    require(
        crop is None or (len(crop) == 2 and 0 < float(crop[0]) <= float(crop[1]) <= 1),
        f"data.random_resized_crop must be null or [low, high] with 0 < low <= high <= 1 (the share of the image a "
        f"crop covers, e.g. [0.35, 1.0]), got {crop!r}.",
    )
    require(0 <= horizontal_flip <= 1, f"data.horizontal_flip is a probability in [0, 1], got {horizontal_flip!r}.")
    require(
        auto_augment is None or auto_augment in AUTO_AUGMENTS,
        f"data.auto_augment must be trivial (TrivialAugmentWide), randaugment (RandAugment) or null, "
        f"got {auto_augment!r}.",
    )
    require(color_jitter >= 0, f"data.color_jitter must be >= 0 (0 = off, e.g. 0.3), got {color_jitter!r}.")


class SampleAugment:
    """Decode one training image and augment it: uint8 (C, H, W) at the training size."""

    def __init__(self, channels: int, size: Sequence[int], random_resized_crop: Sequence[float] | None = None,
                 horizontal_flip: float = 0.0, auto_augment: str | None = None, color_jitter: float = 0.0) -> None:
        self.channels, self.size = channels, (int(size[0]), int(size[1]))
        self.crop_scale = tuple(float(s) for s in random_resized_crop) if random_resized_crop else None
        steps: list[Callable] = []
        if self.crop_scale:
            steps.append(v2.RandomResizedCrop(self.size, scale=self.crop_scale, antialias=True))
        if horizontal_flip:
            steps.append(v2.RandomHorizontalFlip(float(horizontal_flip)))
        if auto_augment == "trivial":
            steps.append(v2.TrivialAugmentWide())
        elif auto_augment == "randaugment":
            steps.append(v2.RandAugment())
        if color_jitter:
            j = float(color_jitter)
            steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j if channels == 3 else None))
        self.pipeline = v2.Compose(steps) if steps else None

    def __call__(self, path: str) -> torch.Tensor:
        if self.crop_scale:
            # Decode large enough that the smallest crop still has the training resolution (JPEG draft mode).
            grow = 1 / math.sqrt(self.crop_scale[0])
            draft = (math.ceil(self.size[1] * grow), math.ceil(self.size[0] * grow))
            x = pil_to_tensor(open_image(path, self.channels, draft_size=draft))
        else:
            x = torch.from_numpy(read_image(path, self.channels, self.size))
        return self.pipeline(x) if self.pipeline is not None else x

    def transform_image(self, x: torch.Tensor) -> torch.Tensor:
        """Augment an image decoded already (uint8 (C, H, W) at the training size), e.g. one read from shards."""
        return self.pipeline(x) if self.pipeline is not None else x

    def __repr__(self) -> str:
        return f"SampleAugment({self.pipeline})"


class ImageFileDataset(Dataset):
    """`(transform(image of paths[index[i]]), targets[i])`, decoded when asked for."""

    def __init__(self, paths: Sequence[str], index: torch.Tensor, targets: torch.Tensor, channels: int,
                 size: Sequence[int], transform: Callable[[torch.Tensor], torch.Tensor] | None,
                 augment: SampleAugment | None = None) -> None:
        self.paths, self.index = list(paths), index.tolist()
        self.targets = targets.cpu()
        self.channels, self.size = channels, (int(size[0]), int(size[1]))
        self.transform, self.augment = transform, augment

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.paths[self.index[i]]
        try:
            x = self.augment(path) if self.augment else torch.from_numpy(read_image(path, self.channels, self.size))
        except BadImageError as exc:
            # Raised in a worker process: the DataLoader shows this message with the worker's traceback.
            raise RuntimeError(f"{exc.path} is not a readable image ({exc.reason}); replace or delete it, or set "
                               "data.skip_bad_images=true.") from None
        x = self.transform(x.unsqueeze(0)).squeeze(0) if self.transform is not None else x.float()
        return x, self.targets[i]

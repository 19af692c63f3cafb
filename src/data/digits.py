"""scikit-learn's 8x8 handwritten digits as 1x8x8 uint8 images (values 0..16): real data, offline."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits

from src.data.batch_transforms import Normalize
from src.data.in_memory import InMemoryDataModule
from src.data.splits import Split, stratified_split


class DigitsDataModule(InMemoryDataModule):
    """1,797 digits; a stratified test split, then validation carved from the rest."""

    MAX_VALUE = 16.0

    def __init__(self, test_fraction: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.test_fraction = test_fraction

    def load(self) -> tuple[Split, None, Split, list[str]]:
        digits = load_digits()
        images = torch.as_tensor(digits.images, dtype=torch.uint8).unsqueeze(1)
        targets = torch.as_tensor(digits.target, dtype=torch.long)
        everything = Split(images, targets)
        keep, test = stratified_split(targets, self.test_fraction, self.split_seed)
        return everything.subset(keep), None, everything.subset(test), [str(d) for d in range(10)]

    def make_transform(self, train: Split) -> Normalize:
        pixels = train.inputs.float() / self.MAX_VALUE
        return Normalize([pixels.mean().item()], [pixels.std().item()], max_value=self.MAX_VALUE)

"""Image data sets read through torchvision and held in memory as uint8 tensors (N, C, H, W).

`TorchvisionImageDataModule` is what MNIST, Fashion-MNIST, CIFAR-10/100, SVHN and STL-10 share:
torchvision downloads the official files into `data_dir` (with network access, in `prepare_data()`,
once per node) and reads them (in `setup()`, on every process); the
official test split is the test split; validation is carved from the training split by the base
class (`val_fraction`, `split_seed`). Pixels stay uint8 until a batch is served, where `Normalize`
turns them into floats with the data set's per-channel `mean`/`std` (given in the data config;
null computes them from the training split).

Offline with the files missing, loading ends in one `UserError` sentence that names the files and
the folder to put them in, instead of torchvision's traceback. Downloads time out after
`DOWNLOAD_TIMEOUT_S` seconds without data, so a network that drops packets cannot hang a run.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import tarfile
import tempfile
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torchvision.datasets.utils import extract_archive

from src.data.batch_transforms import Normalize
from src.data.in_memory import InMemoryDataModule
from src.data.splits import Split
from src.errors import UserError, require

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 15.0  # seconds a connection may wait for data; DNS look-ups are not covered


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Give sockets opened inside (torchvision's urllib downloads set none) a timeout."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def channel_stats(images: torch.Tensor, max_value: float = 255.0, chunk: int = 4096) -> tuple[list, list]:
    """Per-channel mean and std of uint8 images (N, C, H, W) scaled to [0, 1], in chunks (float64 sums)."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].to(torch.float64) / max_value
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    count = images.numel() / channels
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


class TorchvisionImageDataModule(InMemoryDataModule):
    """Base for the torchvision image sets. Subclasses say how to open a split and where files live.

    Subclasses implement `open_split(root, train, download)` (a torchvision dataset),
    `to_tensors(dataset)` (uint8 images (N, C, H, W), long targets) and `expected_files(root)` (what
    the offline message tells the user to put where), and set `title` (the data set's usual name).
    """

    title = "the data set"

    def __init__(
        self,
        data_dir: str,
        download: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_dir = str(data_dir)
        self.download = bool(download)
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]
        channels = self.input_shape[0] if self.input_shape else None
        for key, value in (("mean", self.mean), ("std", self.std)):
            require(
                value is None or len(value) == channels,
                f"data.{key} must have one value per channel ({channels}), got {value}.",
            )
        require(self.std is None or min(self.std) > 0, f"data.std values must be positive, got {self.std}.")

    # --- what a data set provides -------------------------------------------------------------
    @abstractmethod
    def open_split(self, root: Path, train: bool, download: bool = False):
        """The torchvision dataset of the official train (or test) split under `root` (downloading the
        files first if `download` and they are missing)."""

    @abstractmethod
    def to_tensors(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, C, H, W) and long targets (N,) of a torchvision dataset."""

    @abstractmethod
    def expected_files(self, root: Path) -> tuple[str, Path]:
        """(what to put, the folder to put it in), for the offline message."""

    def prepare_files(self, root: Path) -> None:
        """Make files already on disk readable without a download (e.g. extract an archive)."""

    # --- preparing (once per node) and loading (every process) --------------------------------
    def prepare_data(self) -> None:
        """Files already on disk made readable (`prepare_files`: unzipped, extracted), then torchvision's
        download of what is still missing (`data.download`). Lightning runs this once per node before
        any process calls `setup()`, so no two processes write the same file."""
        root = Path(self.data_dir).expanduser()
        with self.explained_failures(root):
            self.prepare_files(root)
            if self.download:
                with socket_timeout(DOWNLOAD_TIMEOUT_S):
                    for train in (True, False):
                        self.open_split(root, train=train, download=True)

    def load(self) -> tuple[Split, None, Split, list[str]]:
        root = Path(self.data_dir).expanduser()
        with self.explained_failures(root):
            train_set = self.open_split(root, train=True)
            test_set = self.open_split(root, train=False)
        train, test = Split(*self.to_tensors(train_set)), Split(*self.to_tensors(test_set))
        names = [str(c) for c in getattr(train_set, "classes", None) or range(self.num_classes)]
        return train, None, test, names

    @contextlib.contextmanager
    def explained_failures(self, root: Path) -> Iterator[None]:
        """torchvision's errors for missing, truncated or undownloadable files, as one `UserError` sentence."""
        try:
            yield
        except (RuntimeError, OSError, EOFError, tarfile.TarError) as exc:  # URLError is an OSError
            log.debug("torchvision could not load %s: %r", self.title, exc)
            raise UserError(self.unreadable_message(root, exc) or self.missing_message(root)) from None

    def unreadable_message(self, root: Path, exc: BaseException) -> str | None:
        """The sentence for files that are there but cannot be read (truncated, corrupt), else None."""
        _, folder = self.expected_files(root)
        present = folder.is_dir() and any(p.is_file() and p.stat().st_size > 0 for p in folder.iterdir())
        if not present or isinstance(exc, OSError) and type(exc).__name__ == "URLError":
            return None
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return (f"{self.title} files in {folder} could not be read ({reason}); they may be truncated or corrupt: "
                f"delete them and put fresh copies there, or run with network access to download them again.")

    def missing_message(self, root: Path) -> str:
        what, folder = self.expected_files(root)
        if self.download:
            why, fix = "could not be downloaded (offline?)", "run once with network access"
        else:
            why, fix = "data.download is false", "run once with network access and data.download=true"
        return f"{self.title} is not in {folder} and {why}: put {what} in {folder}, or {fix}."

    def make_transform(self, train: Split) -> Normalize:
        mean, std = self.mean, self.std
        if mean is None or std is None:
            fitted_mean, fitted_std = channel_stats(train.inputs)
            mean, std = mean or fitted_mean, std or fitted_std
        return Normalize(mean, std)


def extract_if_needed(archive: Path, folder: Path) -> None:
    """Extract `archive` (which holds `folder`) next to itself when it exists and `folder` does not.

    The archive is unpacked into a hidden staging folder that is then renamed to `folder` in one
    step: a process killed while extracting leaves no half-filled `folder` behind, and when two
    processes extract at once (nodes sharing a file system) the second one's copy is dropped."""
    if not archive.is_file() or folder.exists():
        return

    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=archive.parent))
    try:
        extract_archive(str(archive), str(staging))
        extracted = staging / folder.name
        if not extracted.is_dir():
            raise RuntimeError(f"{archive.name} holds no {folder.name}/ folder")
        try:
            extracted.rename(folder)
        except OSError:
            if not folder.is_dir():  # not another process that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

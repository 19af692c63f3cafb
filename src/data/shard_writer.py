"""Write an image data set as LitData shards (`python -m src.shard`; the layout: src/data/shard_format.py).

The data module carves its splits as training would (test, validation, the fold of `data.num_folds`),
and its images are stored as the data config decodes and resizes them: uint8 (C, H, W), as PNG (the
default: lossless), JPEG or raw bytes. The normalisation statistics are the data module's own, fitted on
the training split. `litdata.optimize` encodes the samples in worker processes (one per core by default)
with a progress bar.

An s3:// output is checked first (src/data/object_store.py: reachable, certificate, credentials, bucket);
each split is then written to a local staging folder and uploaded by this process, so that a failed upload
ends in one sentence naming the file and the error (and is noted in `shards.writing.json` for readers).

Restartable: `shards.writing.json` says what is being written before the first chunk, `shards.json` is
written after the last; a run stopped in between is started again with the same command (its splits are
rewritten). An output holding another data set, finished or not, or files of its own, is refused.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litdata import optimize

from src.data import object_store
from src.data import shard_format as fmt
from src.data.image_files import read_image
from src.data.sample_loader import usable_cores
from src.errors import UserError, require

log = logging.getLogger(__name__)

BLOCK = 256  # samples per work item handed to a writing process


class SplitSamples:
    """The samples of one split for `litdata.optimize`: a work item is a range of positions in the split."""

    def __init__(self, images: np.ndarray | None, paths: list[str] | None, targets: np.ndarray, names: list[str],
                 channels: int, size: tuple[int, int], image_format: str, jpeg_quality: int) -> None:
        self.images, self.paths, self.targets, self.names = images, paths, targets, names
        self.channels, self.size = channels, size
        self.image_format, self.jpeg_quality = image_format, jpeg_quality

    def image(self, i: int) -> np.ndarray:
        if self.images is not None:
            return self.images[i]
        return read_image(self.paths[i], self.channels, self.size)

    def __call__(self, block: tuple[int, int]) -> Iterator[dict[str, Any]]:
        for i in range(*block):
            yield {"index": i, "label": int(self.targets[i]), "name": self.names[i],
                   "image": fmt.encode_image(self.image(i), self.image_format, self.jpeg_quality)}


def check_output(output: str, source: dict[str, Any]) -> bool:
    """Whether `output` already holds these finished shards; refuses one holding anything else."""
    done, writing = fmt.read_json(fmt.join(output, fmt.METADATA)), fmt.read_json(fmt.join(output, fmt.WRITING))
    if done is not None:
        require(done.get("source") == source,
                f"output={output} already holds other shards ({done.get('name')!r}, written with other settings); "
                "choose another output, or delete it first.")
        return True
    if writing is not None:
        require(writing.get("source") == source,
                f"output={output} holds an unfinished writing of other shards ({writing.get('name')!r}); choose "
                "another output, or delete it first.")
        return False
    stray = fmt.entries(output)
    require(not stray, f"output={output} is not empty ({', '.join(stray[:3])}); give an empty or new folder.")
    return False


def split_samples(datamodule: Any, split: Any, image_format: str, jpeg_quality: int) -> SplitSamples:
    """A split's images from memory (decoded uint8) or, for a folder read per sample, from its files."""
    channels, height, width = (int(d) for d in datamodule.input_shape)
    targets = split.targets.cpu().numpy()
    names = [str(n) for n in split.names] if split.names is not None else [str(i) for i in range(len(split))]
    if getattr(datamodule, "file_backed", False):  # data.loader=dataloader: positions in the folder's listing
        paths = [datamodule.paths[int(i)] for i in split.inputs.tolist()]
        return SplitSamples(None, paths, targets, names, channels, (height, width), image_format, jpeg_quality)
    images = datamodule.display_inputs(split, torch.arange(len(split))).cpu()
    require(images.dtype == torch.uint8 and images.dim() == 4,
            f"the {datamodule.name} data set does not hold images (uint8 (N, C, H, W)); src.shard writes image sets.")
    return SplitSamples(images.numpy(), None, targets, names, channels, (height, width), image_format, jpeg_quality)


def write_shards(datamodule: Any, output: str, source: dict[str, Any], image_format: str = "auto",
                 jpeg_quality: int = 90, workers: int | None = None, chunk_bytes: str = "64MB",
                 staging_dir: str | None = None) -> dict[str, Any]:
    """Write every split of `datamodule` to `output`; return the data set's description (shards.json).
    `source` (the data config that carves the splits) identifies the data set in the output. An s3:// output
    is written split by split under `staging_dir` (default: the system's temporary folder) and uploaded."""
    require(image_format in fmt.IMAGE_FORMATS,
            f"image_format must be one of {', '.join(fmt.IMAGE_FORMATS)}, got {image_format!r}.")
    require(isinstance(jpeg_quality, int) and 1 <= jpeg_quality <= 100,
            f"jpeg_quality must be an integer from 1 to 100, got {jpeg_quality!r}.")
    require(workers is None or (isinstance(workers, int) and workers > 0),
            f"workers must be a positive integer or null (one per core), got {workers!r}.")
    image_format = fmt.stored_format(image_format, getattr(datamodule, "input_shape", None))
    source = {**source, "image_format": image_format, **({"jpeg_quality": jpeg_quality} if image_format == "jpeg"
                                                          else {})}
    if check_output(output, source):
        print(f"{output} already holds these shards; nothing to write.", flush=True)
        return fmt.read_metadata(output)
    fmt.write_json(fmt.join(output, fmt.WRITING), {"name": datamodule.name, "source": source})
    datamodule.prepare_data()
    datamodule.setup("fit")
    require(len(datamodule.input_shape) == 3, f"the {datamodule.name} data set does not hold images "
                                              "(input_shape [C, H, W]); src.shard writes image sets.")
    workers = workers or usable_cores()
    counts = {}
    remote = fmt.is_remote(output)
    with tempfile.TemporaryDirectory(prefix="shards-", dir=staging_dir) as staging:
        for name in fmt.SPLITS:
            split = getattr(datamodule, f"{name}_split")
            samples = split_samples(datamodule, split, image_format, jpeg_quality)
            blocks = [(start, min(start + BLOCK, len(split))) for start in range(0, len(split), BLOCK)]
            target = fmt.join(output, name)
            fmt.remove(target)  # what an interrupted run left there
            # An s3:// split is written to a local folder, then uploaded (object_store.upload_folder).
            local = str(Path(staging, name)) if remote else target
            print(f"{name}: {len(split)} images -> {target}", flush=True)
            optimize(fn=samples, inputs=blocks, output_dir=local, chunk_bytes=chunk_bytes,
                     num_workers=min(workers, len(blocks)), mode="overwrite", keep_data_ordered=True,
                     start_method="fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            if remote:
                upload_split(Path(local), target, output, datamodule.name, source)
            counts[name] = len(split)
    describe = getattr(datamodule.transform, "state", None)
    meta = {
        "format": fmt.FORMAT, "version": fmt.VERSION, "name": datamodule.name,
        "class_names": [str(n) for n in datamodule.class_names],
        "input_shape": [int(d) for d in datamodule.input_shape], "image_format": image_format,
        "normalize": describe() if callable(describe) else None,
        "samples": counts, "source": source,
    }
    fmt.write_json(fmt.join(output, fmt.METADATA), meta)
    fmt.remove(fmt.join(output, fmt.WRITING))
    return meta


def upload_split(folder: Path, target: str, output: str, name: str, source: dict[str, Any]) -> None:
    """Upload a split written to `folder`, then free the disk it took. A failed upload is noted in the
    output's shards.writing.json (which file, which error), where `data=shards` reports it."""
    try:
        object_store.upload_folder(folder, target)
    except object_store.UploadFailed as failed:
        with contextlib.suppress(UserError):  # the store may not take that note either
            fmt.write_json(fmt.join(output, fmt.WRITING), {"name": name, "source": source, "stopped": failed.what})
        raise
    shutil.rmtree(folder)


def chunk_limit_bytes(size: str | int) -> int:
    """'64MB' / '1GB' / 1000 as bytes (LitData's notation)."""
    if isinstance(size, int):
        return size
    units = {"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "b": 1}
    text = str(size).strip().lower()
    for unit, factor in units.items():
        if text.endswith(unit):
            try:
                return int(math.ceil(float(text[: -len(unit)]) * factor))
            except ValueError:
                break
    raise UserError(f"{size!r} is not a size; write it as 64MB, 2GB or a number of bytes.")

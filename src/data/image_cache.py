"""The decoded-image cache of `data=image_folder`: every image decoded and resized once into one uint8
array on disk, read back in a fraction of a second by later runs.

A cache is two files in `cache_dir`: `<name>.npy` (uint8 (N, C, H, W), readable with `numpy.load`)
and `<name>.json` (the key, the files in order and the unreadable ones that were skipped). The
name holds a hash of the key: the folder's file list with every file's size and modification time,
the channels, the image size and the decoding rule's version, so any change (a file added,
removed, replaced or touched, another `image_size`) gives another name and the cache is rebuilt;
older caches of the same folder are then deleted. Files are written under temporary names and
renamed, the `.json` last: a cache is either complete or absent, even if a run is killed while
decoding. `ImageFolderDataModule.prepare_data` builds it (once per node under DDP: Lightning runs
that hook on local rank 0 while the other processes wait), `setup` reads it.

The same key names the "checked" record of the per-sample loader (`<name>.checked.json`): which
files failed the quick integrity check, so that check too runs once per change of the folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from src.data.image_files import check_images, read_images
from src.data.sample_loader import usable_cores

log = logging.getLogger(__name__)

RULE_VERSION = 1  # of the decoding rule in src/data/image_files.py: bump it when that rule changes
IN_PROCESS_BELOW = 1500  # files: fewer are decoded without starting worker processes


@dataclass(frozen=True)
class CacheKey:
    """What a cache depends on, and the file names that follow from it."""

    folder: Path  # the image folder (absolute)
    digest: str   # hash of the file list, sizes, modification times, channels, size and rule version

    @property
    def prefix(self) -> str:
        """`<folder name>-<hash of its absolute path>-`: every cache of this folder starts with it."""
        where = hashlib.sha1(str(self.folder).encode()).hexdigest()[:8]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.folder.name) or "images"
        return f"{safe}-{where}-"

    def stem(self, cache_dir: Path) -> Path:
        return cache_dir / f"{self.prefix}{self.digest[:16]}"


def cache_key(folder: Path, files: Sequence[str], channels: int, size: Sequence[int]) -> CacheKey:
    """The key of `files` (paths relative to `folder`), stat'ed now."""
    digest = hashlib.sha1(f"rule {RULE_VERSION}; channels {channels}; size {list(size)}\n".encode())
    base = str(folder)
    for rel in files:
        stat = os.stat(os.path.join(base, rel))
        digest.update(f"{rel}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return CacheKey(folder.resolve(), digest.hexdigest())


@dataclass
class CachedImages:
    """A cache read back: the images (N, C, H, W) uint8 and the unreadable files [(position, reason)]."""

    images: np.ndarray
    bad: list[tuple[int, str]]


def has_cache(key: CacheKey, cache_dir: Path) -> bool:
    """Whether the complete cache of `key` is in `cache_dir` (without reading its images)."""
    stem = key.stem(cache_dir)
    try:
        return stem.with_suffix(".npy").is_file() and json.loads(stem.with_suffix(".json").read_text()).get(
            "key") == key.digest
    except (OSError, ValueError):
        return False


def read_cache(key: CacheKey, cache_dir: Path, mmap: bool = False) -> CachedImages | None:
    """The cache of `key` in `cache_dir`, or None when there is none (or it is incomplete)."""
    stem = key.stem(cache_dir)
    meta_path, array_path = stem.with_suffix(".json"), stem.with_suffix(".npy")
    if not meta_path.is_file() or not array_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key.digest:
            return None
        images = np.load(array_path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as exc:
        log.warning("the image cache %s cannot be read (%s); it is rebuilt.", array_path, exc)
        return None
    return CachedImages(images, [(int(i), str(r)) for i, r in meta.get("bad", [])])


def read_checked(key: CacheKey, cache_dir: Path) -> list[tuple[int, str]] | None:
    """The unreadable files found by a previous quick check of the same files, or None."""
    path = key.stem(cache_dir).with_suffix(".checked.json")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return [(int(i), str(r)) for i, r in meta["bad"]] if meta.get("key") == key.digest else None


def _atomic_write_text(path: Path, text: str) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(text)
    partial.replace(path)


def _remove_older(key: CacheKey, cache_dir: Path, keep: Path) -> None:
    """Delete the other caches of the same folder (made for files or settings that changed)."""
    for old in cache_dir.glob(f"{key.prefix}*"):
        if not old.name.startswith(keep.name) and not old.name.endswith(".part"):
            try:
                old.unlink()
            except OSError:  # another process removed it, or it is in use: it does no harm
                pass


def _chunks(n: int, workers: int) -> list[tuple[int, int]]:
    size = max(64, min(1024, n // max(workers * 8, 1) or 64))
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _run_chunks(task: Callable, paths: Sequence[str], args: tuple, workers: int, description: str,
                on_result: Callable[[int, object], bool]) -> None:
    """Run `task(paths[a:b], *args)` over chunks, in worker processes when there are many files, with a
    progress bar; `on_result(a, result)` returns False to stop early (the rest is cancelled)."""
    chunks = _chunks(len(paths), workers)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        bar = progress.add_task(description, total=len(paths))
        if workers <= 1 or len(paths) < IN_PROCESS_BELOW:
            for a, b in chunks:
                if not on_result(a, task(paths[a:b], *args)):
                    return
                progress.advance(bar, b - a)
            return

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(task, paths[a:b], *args): (a, b) for a, b in chunks}
            for future in as_completed(futures):
                a, b = futures[future]
                if not on_result(a, future.result()):
                    pool.shutdown(wait=True, cancel_futures=True)
                    return
                progress.advance(bar, b - a)


def build_cache(key: CacheKey, cache_dir: Path, paths: Sequence[str], channels: int, size: Sequence[int],
                stop_at_bad: bool, workers: int | None = None, reader: Callable = read_images) -> list[tuple[int, str]]:
    """Decode `paths` (absolute; or what `reader` decodes, e.g. `data=hf`'s encoded images) into the cache of
    `key`; returns the unreadable files [(position, reason)].

    With `stop_at_bad` decoding stops at the first unreadable file and nothing is written (the caller
    reports it); otherwise unreadable files are recorded in the cache and their rows stay zero."""
    workers = usable_cores() if workers is None else max(int(workers), 1)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = key.stem(cache_dir)
    array_path = stem.with_suffix(".npy")
    partial = array_path.with_name(f"{array_path.name}.{os.getpid()}.part")
    shape = (len(paths), channels, int(size[0]), int(size[1]))
    processes = 1 if len(paths) < IN_PROCESS_BELOW else workers
    log.info("Decoding %d images of %s at %dx%d into the cache %s (%d process%s)...", len(paths), key.folder,
             shape[2], shape[3], array_path, processes, "" if processes == 1 else "es")
    started = time.perf_counter()
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
    bad: list[tuple[int, str]] = []

    def store(start: int, result) -> bool:
        images, chunk_bad = result
        out[start : start + len(images)] = images
        bad.extend((start + i, reason) for i, reason in chunk_bad)
        return not (stop_at_bad and bad)

    try:
        _run_chunks(reader, paths, (channels, tuple(size), True), workers, "decoding images", store)
        if stop_at_bad and bad:
            return sorted(bad)[:1]
        out.flush()
        partial.replace(array_path)
    finally:
        if partial.exists():
            partial.unlink()
    bad.sort()
    meta = {"key": key.digest, "folder": str(key.folder), "shape": list(shape), "bad": bad}
    _atomic_write_text(stem.with_suffix(".json"), json.dumps(meta) + "\n")
    _remove_older(key, cache_dir, keep=stem)
    log.info("Decoded %d images in %.1f s (%.1f MiB cache).", len(paths), time.perf_counter() - started,
             array_path.stat().st_size / 2**20)
    return bad


def check_files(key: CacheKey, cache_dir: Path, paths: Sequence[str], stop_at_bad: bool,
                workers: int | None = None) -> list[tuple[int, str]]:
    """The quick integrity check of `paths` (no decoding), recorded under `key` unless it stopped early."""
    workers = usable_cores() if workers is None else max(int(workers), 1)
    log.info("Checking %d image files of %s...", len(paths), key.folder)
    bad: list[tuple[int, str]] = []

    def store(start: int, chunk_bad) -> bool:
        bad.extend((start + i, reason) for i, reason in chunk_bad)
        return not (stop_at_bad and bad)

    _run_chunks(check_images, paths, (), workers, "checking images", store)
    bad.sort()
    if stop_at_bad and bad:
        return bad[:1]
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = key.stem(cache_dir)
    _atomic_write_text(stem.with_suffix(".checked.json"), json.dumps({"key": key.digest, "bad": bad}) + "\n")
    _remove_older(key, cache_dir, keep=stem)
    return bad

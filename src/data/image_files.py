"""One image file -> the uint8 pixels a model is trained on: the single decoding and resizing rule that
`data=image_folder` (its cache and its per-sample loader) and `src.predict` share.

The rule: open with Pillow (first frame), turn by the EXIF orientation tag, convert to grey ("L") or
RGB, scale 16-bit grey to 8 bits, and resize to height x width without keeping the aspect ratio
(area averaging when both sides shrink, bilinear otherwise). JPEGs are decoded at the smallest
DCT scale that is still at least that size (Pillow's draft mode): several times faster for photos
much larger than the training size, and the same pixels wherever the rule runs.

This module imports only numpy and Pillow, so decoding worker processes start quickly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# What `data=image_folder` reads (JPEG, PNG, BMP, WebP, TIFF; GIF and PNM too) and `src.predict` accepts.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class BadImageError(ValueError):
    """A file that Pillow cannot read as an image (unknown format, truncated, corrupt)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def image_mode(channels: int) -> str:
    if channels not in (1, 3):
        raise ValueError(f"images are read with 1 (grey) or 3 (RGB) channels, not {channels}")
    return "L" if channels == 1 else "RGB"


def open_image(path: str | Path, channels: int, draft_size: tuple[int, int] | None = None):
    """The Pillow image of `path` (loaded, turned upright, in grey or RGB); BadImageError if unreadable.

    `draft_size` (width, height): let a JPEG decoder skip detail below that size (Pillow's draft mode)."""
    mode = image_mode(channels)
    try:
        with Image.open(path) as image:
            if draft_size is not None and image.format == "JPEG":
                image.draft(mode, draft_size)
            image.load()
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grey (PNG, TIFF): keep the top 8 bits
                image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8), "L")
            return image.convert(mode) if image.mode != mode else image
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        # OSError covers UnidentifiedImageError and "image file is truncated".
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BadImageError(path, f"{type(exc).__name__}: {reason}") from exc


def resize_to(image, height: int, width: int):
    """`image` resized to width x height: area averaging when both sides shrink, bilinear otherwise."""
    if image.size == (width, height):
        return image
    shrink = image.width >= width and image.height >= height
    return image.resize((width, height), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)


def read_image(path: str | Path, channels: int, size: Sequence[int]) -> np.ndarray:
    """uint8 pixels (channels, height, width) of an image file, decoded and resized by the rule above."""
    height, width = int(size[0]), int(size[1])
    image = resize_to(open_image(path, channels, draft_size=(width, height)), height, width)
    pixels = np.array(image, dtype=np.uint8)  # a writable copy (Pillow's buffer is read-only)
    return pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def read_images(paths: Sequence[str], channels: int, size: Sequence[int],
                skip_bad: bool) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """(uint8 array (len(paths), C, H, W), [(position, reason) of unreadable files]).

    With `skip_bad` an unreadable file leaves zeros in its row and is reported; without, the first
    one raises BadImageError. Runs in decoding worker processes (see `src/data/image_cache.py`)."""
    out = np.zeros((len(paths), channels, int(size[0]), int(size[1])), dtype=np.uint8)
    bad: list[tuple[int, str]] = []
    for i, path in enumerate(paths):
        try:
            out[i] = read_image(path, channels, size)
        except BadImageError as exc:
            if not skip_bad:
                raise
            bad.append((i, exc.reason))
    return out, bad


def check_image(path: str | Path) -> str | None:
    """Why `path` is not a readable image, or None: the quick check of the per-sample loader, which
    decodes images only while it trains. PNG: Pillow's integrity check (chunk checksums, no
    decompression); JPEG: a decode at 1/8 scale (it still reads every byte); other formats: a decode."""
    try:
        with Image.open(path) as image:
            if image.format == "PNG":
                image.verify()
            else:
                if image.format == "JPEG":
                    image.draft(image.mode, (1, 1))
                image.load()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return f"{type(exc).__name__}: {reason}"
    return None


def check_images(paths: Sequence[str]) -> list[tuple[int, str]]:
    """[(position, reason)] of the files of `paths` that `check_image` refuses (worker processes)."""
    return [(i, reason) for i, path in enumerate(paths) if (reason := check_image(path)) is not None]

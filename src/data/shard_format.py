"""What `src.shard` writes and `data=shards` reads: LitData's optimized chunks, one folder per split
(`<root>/train`, `<root>/val`, `<root>/test`, each with LitData's `index.json`), and `<root>/shards.json`,
the data set's description (class names, input shape, normalisation fitted on the training split, how
images are stored, sample counts). `shards.json` is written last: a root without it holds no finished
shards. `<root>` is a local folder or an `s3://bucket/prefix` URL (the small JSON files go through boto3,
the chunks through LitData; both read the usual AWS settings: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or
AWS_PROFILE, AWS_ENDPOINT_URL for an S3-compatible server, AWS_CA_BUNDLE; src/data/object_store.py)."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from botocore.exceptions import ClientError
from torchvision.io import ImageReadMode, decode_image, encode_jpeg, encode_png

from src.errors import UserError

FORMAT = "lightning-hydra-classify image shards"
VERSION = 1
METADATA = "shards.json"  # the finished data set's description, written last
WRITING = "shards.writing.json"  # what is being written there, removed once METADATA is written
SPLITS = ("train", "val", "test")
IMAGE_FORMATS = ("auto", "png", "jpeg", "raw")
RAW_UP_TO_BYTES = 16 * 1024  # `auto` stores images of up to this many pixel bytes raw (64 x 64 RGB is 12 KiB)
CREDENTIALS_HELP = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), plus AWS_ENDPOINT_URL for an "
                    "S3-compatible server")


# --- images ---------------------------------------------------------------------------------------
def stored_format(image_format: str, input_shape: Any) -> str:
    """The format images are written in: `auto` is raw for small images, whose pixels are read faster than
    a PNG is decoded and take about as little room, and PNG for larger ones (lossless, a fraction of the
    pixels' size)."""
    if image_format != "auto":
        return image_format
    shape = [int(d) for d in input_shape] if input_shape is not None else []
    return "raw" if len(shape) == 3 and shape[0] * shape[1] * shape[2] <= RAW_UP_TO_BYTES else "png"


def encode_image(image: np.ndarray, image_format: str, jpeg_quality: int = 90) -> bytes | np.ndarray:
    """uint8 (C, H, W) as stored in a chunk: PNG or JPEG bytes, or the array itself (raw)."""
    if image_format == "raw":
        return np.ascontiguousarray(image, dtype=np.uint8)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.uint8))
    data = encode_png(x) if image_format == "png" else encode_jpeg(x, quality=jpeg_quality)
    return data.numpy().tobytes()


def decode_stored_image(value: bytes | np.ndarray, image_format: str, channels: int) -> torch.Tensor:
    """A stored image back as uint8 (C, H, W)."""
    if image_format == "raw":
        return torch.from_numpy(np.array(value, dtype=np.uint8, copy=True))
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    return decode_image(torch.frombuffer(bytearray(value), dtype=torch.uint8), mode=mode)


# --- where shards live: a local folder or s3:// -------------------------------------------------------
def is_remote(root: str) -> bool:
    return "://" in str(root)


def join(root: str, *parts: str) -> str:
    return "/".join([str(root).rstrip("/"), *parts]) if is_remote(root) else str(Path(root, *parts))


def _s3(url: str) -> tuple[Any, str, str]:
    parsed = urlparse(url)
    if parsed.scheme != "s3":
        raise UserError(f"{url}: shards are read from a local folder or an s3:// URL, not {parsed.scheme}://; copy "
                        "them to one of those.")
    from src.data import object_store  # LitData's import time only for remote shards

    return object_store.client(url), parsed.netloc, parsed.path.lstrip("/")


def _s3_error(exc: Exception, url: str, doing: str = "read") -> UserError:
    from src.data import object_store

    return object_store.explain(exc, url, doing)


def read_json(url: str) -> dict[str, Any] | None:
    """The JSON file at `url` (a local path or s3://), or None if there is none."""
    if not is_remote(url):
        path = Path(url).expanduser()
        return json.loads(path.read_text()) if path.is_file() else None
    client, bucket, key = _s3(url)
    try:
        return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise _s3_error(exc, url) from None
    except Exception as exc:
        raise _s3_error(exc, url) from None


def write_json(url: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    if not is_remote(url):
        path = Path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text)
        os.replace(partial, path)  # readers see the old file or the whole new one
        return
    client, bucket, key = _s3(url)
    try:
        client.put_object(Bucket=bucket, Key=key, Body=io.BytesIO(text.encode()))
    except Exception as exc:
        raise _s3_error(exc, url, "write") from None


def remove(url: str) -> None:
    """Delete a file or a whole folder (prefix) at `url`; nothing there is fine."""
    if not is_remote(url):
        path = Path(url).expanduser()
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        return
    client, bucket, key = _s3(url)
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    except Exception as exc:
        raise _s3_error(exc, url, "delete") from None


def entries(root: str) -> list[str]:
    """The names directly inside `root` (empty if it does not exist)."""
    if not is_remote(root):
        path = Path(root).expanduser()
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    client, bucket, key = _s3(root)
    prefix = key.rstrip("/") + "/" if key else ""
    try:
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/", MaxKeys=100)
    except Exception as exc:
        raise _s3_error(exc, root) from None
    names = [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return sorted(names + [o["Key"][len(prefix):] for o in page.get("Contents", [])])


def read_metadata(root: str) -> dict[str, Any]:
    """`<root>/shards.json`, checked: one sentence when `root` holds no shards, or shards of another version."""
    meta = read_json(join(root, METADATA))
    if meta is None:
        writing = read_json(join(root, WRITING))
        if writing is None:
            raise UserError(f"data.root={root} holds no image shards ({METADATA} is missing); write them with "
                            f"python -m src.shard data=<data set> output={root}.")
        raise UserError(unfinished(root, writing))
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise UserError(f"data.root={root} holds shards of another format or version ({meta.get('format')!r} "
                        f"version {meta.get('version')!r}; this code reads version {VERSION}); write them again with "
                        "python -m src.shard.")
    return meta


def unfinished(root: str, writing: dict[str, Any]) -> str:
    """What an unfinished write at `root` lacks, and why it stopped where the writer could note it."""
    missing = [split for split in SPLITS if read_json(join(root, split, "index.json")) is None]
    lacks = ", ".join([*missing, METADATA])
    what = f"data.root={root} holds an unfinished write of the {writing.get('name')} shards (missing: {lacks})"
    if writing.get("stopped"):
        return (f"{what}, which stopped when uploading {writing['stopped']} failed; once the store accepts that "
                f"upload, the same python -m src.shard command (output={root}) finishes it.")
    return (f"{what}, whose writer stopped before its end; the same python -m src.shard command (output={root}) "
            "finishes it.")


def config_value(key: str, data: Any) -> Any:
    """`${shards:KEY}` in conf/data/shards.yaml: the data set's name, class count or input shape, from shards.json."""
    meta = read_metadata(str(data.root))
    if key == "num_classes":
        return len(meta["class_names"])
    if key in ("input_shape", "name"):
        return meta[key]
    raise UserError(f"${{shards:{key}}} is unknown; use num_classes, input_shape or name.")

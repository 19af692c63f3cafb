"""Checkpoints written by `src.train` (src/runs/checkpoint_writer.py), read back with one-sentence errors for the
usual mistakes: a missing or damaged file, a file of another kind, one holding Python objects."""

from __future__ import annotations

import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import torch

from src.errors import UserError, require
from src.models.nets.weights import unsafe_globals


def run_dir_of(ckpt_path: str | Path) -> Path | None:
    """The run folder of a checkpoint that `src.train` wrote into `<run_dir>/checkpoints/`."""
    path = Path(ckpt_path)
    return path.parent.parent if path.parent.name == "checkpoints" else None


def resolve_ckpt_path(ckpt_path: str | None) -> Path:
    require(bool(ckpt_path), "ckpt_path is required: pass ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt.")
    path = Path(str(ckpt_path)).expanduser()
    require(
        path.is_file(),
        f"no checkpoint at {path}; pass the path of a .ckpt file, e.g. logs/train/runs/<run>/checkpoints/last.ckpt.",
    )
    return path


HUB_DATA = "src.data.hf_dataset.HFDataModule"  # its data.path may be a Hub id
DATA_PATH_KEYS = ("root", "path", "data_dir", "cache_dir", "system_dir")  # the data configs' file and folder keys


def training_paths(run_config: dict[str, Any]) -> dict[str, Any]:
    """The data config a checkpoint stores (`run_config`) with relative file and folder paths (`data.root=photos`
    as typed) made absolute from the folder the training ran in (`paths.root_dir`), so that its data module can be
    rebuilt from any folder."""
    data = dict(run_config["data"])
    base = (run_config.get("paths") or {}).get("root_dir")
    for key in DATA_PATH_KEYS:
        value = data.get(key)
        if base and isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            if key == "path" and data.get("_target_") == HUB_DATA and not (Path(base) / value).exists():
                continue  # a Hub id (data=hf), not a file
            data[key] = str(Path(base) / value)
    return data


def load_checkpoint(ckpt_path: str | None, tensors_on_demand: bool = False) -> tuple[Path, dict[str, Any]]:
    """(path, checkpoint dict) of a checkpoint that `src.train` wrote (it holds `run_config`).

    `tensors_on_demand`: the tensors are memory-mapped, read only if used; for readers of the run's
    configuration and counters, such as a resume, which Lightning then loads whole once."""
    folder = Path(str(ckpt_path or "")).expanduser()
    if folder.is_dir() and (folder / "config.json").is_file():  # a model folder of src.export format=hub
        from src.runs.model_folder import read_model_folder
        return read_model_folder(folder)
    path = resolve_ckpt_path(ckpt_path)
    _require_checkpoint_format(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=tensors_on_demand)
    except OSError as exc:
        raise UserError(f"{path} cannot be read ({exc.strerror or exc}); check the path and its permissions.") from exc
    except pickle.UnpicklingError as exc:  # the safe loader refused what the pickle asks for, or the pickle is broken
        if not _pickle_is_whole(path):
            raise _unreadable(path, exc) from exc
        found = ", ".join(unsafe_globals(path))
        raise UserError(
            f"{path} holds Python objects{f' ({found})' if found else ''} besides tensors and plain values, so it is "
            "unsafe to load (unpickling it could run code) and weights-only loading refuses it; src.train never "
            "writes one: pass a checkpoint from logs/."
        ) from exc
    except (RuntimeError, EOFError, KeyError, ValueError, IndexError, zipfile.BadZipFile) as exc:  # a damaged file
        raise _unreadable(path, exc) from exc
    require(
        isinstance(ckpt, dict) and "run_config" in ckpt and "state_dict" in ckpt,
        f"{path} was not written by src.train (it has no run configuration); pass a checkpoint from logs/.",
    )
    return path, ckpt


def _require_checkpoint_format(path: Path) -> None:
    """A file torch.load can read starts as a zip archive (what torch.save writes) or as a pickle (older files);
    any other file (a CSV table, an image) is named as what it is not, before the loader trips over it."""
    try:
        with open(path, "rb") as file:
            start = file.read(4)
    except OSError:
        return  # the loader names why it cannot be read
    if start.startswith((b"PK\x03\x04", b"\x80")) or not start:
        return
    raise UserError(f"{path} is not a readable PyTorch checkpoint (it starts with {start!r}: neither a zip archive "
                    "nor a pickle); pass a .ckpt file that src.train wrote, e.g. logs/train/runs/<run>/checkpoints/"
                    "last.ckpt.")


def _pickle_is_whole(path: Path) -> bool:
    """Whether the checkpoint's pickle stream parses to its end (the file is whole, whatever it asks to import):
    a `torch.save` zip archive's `data.pkl`, or a legacy file's first four pickles (its header and its object)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
                for _ in pickletools.genops(archive.read(name)):
                    pass
            return True
        with open(path, "rb") as file:
            for _ in range(4):
                for _ in pickletools.genops(file):
                    pass
        return True
    except (StopIteration, ValueError, EOFError, OSError, zipfile.BadZipFile):
        return False


def _unreadable(path: Path, exc: BaseException) -> UserError:
    """The error for a file that is not a whole checkpoint, naming the reader's exception and its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[-1].split(". ")[0].rstrip(".") if isinstance(exc, pickle.UnpicklingError) and lines else (
        lines[0].split(". ")[0].rstrip(".") if lines else "the file ends early")
    return UserError(
        f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {reason}); it may be truncated or "
        "corrupt: pick another checkpoint of the run (e.g. last.ckpt)."
    )

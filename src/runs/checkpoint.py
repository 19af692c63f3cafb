"""Read checkpoints written by `src.train`, with one-sentence errors for the usual mistakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from src.errors import UserError, require


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


def load_checkpoint(ckpt_path: str | None) -> tuple[Path, dict[str, Any]]:
    """(path, checkpoint dict) of a checkpoint that `src.train` wrote (it holds `run_config`)."""
    import torch

    path = resolve_ckpt_path(ckpt_path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}); it may be truncated or "
            "corrupt: pick another checkpoint of the run (e.g. last.ckpt)."
        ) from None
    require(
        isinstance(ckpt, dict) and "run_config" in ckpt and "state_dict" in ckpt,
        f"{path} was not written by src.train (it has no run configuration); pass a checkpoint from logs/.",
    )
    return path, ckpt

"""What makes a run folder self-describing: code version, packages, device, time, configuration."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

CODE_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "omegaconf", "numpy")


def git_state(root: Path = CODE_ROOT) -> dict[str, Any]:
    """{"commit": sha or None, "dirty": tracked files changed since that commit (None outside git)}."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_record(config: dict, overrides: list[str], seed: int, device: str, wall_time_s: float) -> dict[str, Any]:
    """Everything but the metrics; `src.report` reads it beside them from `metrics.json`."""
    return {
        "status": "completed",
        "overrides": list(overrides),
        "seed": seed,
        "device": device,
        "host": platform.node(),
        "wall_time_s": round(wall_time_s, 3),
        "git": git_state(),
        "versions": package_versions(),
        "config": config,
    }

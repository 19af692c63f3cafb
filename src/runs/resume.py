"""`ckpt_path=last|PATH`: continue a run in its own folder, with its own configuration."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.errors import UserError, require

# A resumed run keeps its data, model and the rest of its composition; only values may change.
GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger", "augment", "paths",
          "experiment", "debug", "hydra", "hparams_search")


def find_last_checkpoint(log_dir: str | Path, task: str = "train") -> Path:
    """The newest `last.ckpt` of the task's runs (single runs and sweep jobs)."""
    base = Path(log_dir) / task
    found = [*base.glob("runs/*/checkpoints/last*.ckpt"), *base.glob("multiruns/*/*/checkpoints/last*.ckpt")]
    require(bool(found), f"ckpt_path=last found no last.ckpt under {base}; pass the path of a checkpoint instead.")
    return max(found, key=lambda p: p.stat().st_mtime)


def resume_config(cfg: DictConfig, overrides: list[str]) -> tuple[DictConfig, Path | None]:
    """(config to run, checkpoint to resume from). Without `ckpt_path`, `cfg` as it is. With it, the
    checkpoint's own run configuration (so logs and checkpoints continue in the run's folder) with
    this command's `key=value` overrides applied on top."""
    ckpt_path = cfg.get("ckpt_path")
    if not ckpt_path:
        return cfg, None
    from src.runs.checkpoint import load_checkpoint

    path = find_last_checkpoint(cfg.paths.log_dir, cfg.task_name) if str(ckpt_path) == "last" else Path(ckpt_path)
    path, ckpt = load_checkpoint(str(path))
    values = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "ckpt_path":
            continue
        if key in GROUPS:
            raise UserError(
                f"a resumed run keeps its configuration, so '{override}' cannot change it; drop it, or start a "
                "new run without ckpt_path."
            )
        values.append(override.lstrip("+"))
    resumed = OmegaConf.merge(OmegaConf.create(ckpt["run_config"]), OmegaConf.from_dotlist(values))
    resumed.ckpt_path = str(path)
    return resumed, path

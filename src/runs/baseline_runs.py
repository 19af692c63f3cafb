"""The run folder of one classical baseline, laid out as a net's run folder is: `metrics.json` (the metrics
beside the run record), `test_predictions.csv`, and `.hydra/config.yaml` + `.hydra/overrides.yaml` (the
command's overrides plus `model=<classifier>`, which is what `src.report` and `src.compare --by model` show)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from src.runs.predictions import TEST_PREDICTIONS_FILE, write_predictions_csv
from src.runs.record import completed_record


def baseline_config(cfg: DictConfig, name: str) -> dict[str, Any]:
    """The command's resolved config with `model` = this classifier (its name and estimator) in place of the list."""
    config = OmegaConf.to_container(cfg, resolve=True)
    classifiers = config.pop("classifiers", {}) or {}
    config["model"] = {"name": name, **(classifiers.get(name) or {})}
    return config


def command_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def write_baseline_run(folder: Path, cfg: DictConfig, name: str, metrics: dict[str, float], test_probabilities,
                       splits, wall_time_s: float) -> None:
    config = baseline_config(cfg, name)
    overrides = [o for o in command_overrides() if not o.startswith("model=")] + [f"model={name}"]
    hydra_dir = folder / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    write_predictions_csv(folder / TEST_PREDICTIONS_FILE, splits.test, test_probabilities, splits.class_names)
    completed_record(metrics, config, overrides, "cpu", wall_time_s).write(folder)

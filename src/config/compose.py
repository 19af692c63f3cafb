"""A run's config composed in-process, exactly as `python -m src.train <overrides>` composes it.

For code that calls a task function (`src.train.train`) without Hydra's command line: benchmarks and
tests. Hydra's run-time values (the output folder, the working directory) are set as a launched job
has them, so `${hydra:...}` interpolations and `HydraConfig.get()` work, and the `hydra` node is removed
as the task function never sees it. `paths.output_dir` is the given folder itself, so a config
composed earlier keeps its folder when another is composed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import src.config.resolvers  # noqa: F401  (registers ${len:...})
from src.config.names import CONF


def compose_run_config(overrides: Sequence[str], output_dir: str | Path, cwd: str | Path | None = None,
                       config_name: str = "train") -> DictConfig:
    """The resolved-on-access config of `config_name` with `overrides`, writing its run under `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name, overrides=[*overrides, f"hydra.run.dir={output_dir}"], return_hydra_config=True)
    cfg.hydra.runtime.output_dir = str(output_dir)
    cfg.hydra.runtime.cwd = str(cwd if cwd is not None else CONF.parent)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    # Its own folder, not `${hydra:runtime.output_dir}`: read later, that would be the folder of whichever
    # config was composed last in this process.
    cfg.paths.output_dir = str(output_dir)
    return cfg

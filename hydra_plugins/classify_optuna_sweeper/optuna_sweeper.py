"""`hydra/sweeper=optuna` (conf/hydra/sweeper/optuna.yaml): a hyper-parameter search on current Optuna.

Hydra instantiates this class with the `hydra.sweeper` settings and calls `sweep` with the command's
overrides; the search itself is src/sweeps/search.py.
"""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = OmegaConf.create(settings)
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        # Imported here: Hydra imports every plugin module at each start, and only a search needs Optuna.
        from src.errors import exits_on_user_error
        from src.sweeps.search import run_search
        from src.sweeps.settings import check_settings

        exits_on_user_error(check_settings)(self.settings)  # (the entry points check it before composing too)
        exits_on_user_error(run_search)(self.settings, arguments, self.config, self.launcher)

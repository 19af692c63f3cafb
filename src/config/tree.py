"""Print the resolved configuration as a tree, and keep a copy of it in the run folder."""

from __future__ import annotations

from pathlib import Path

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

FIRST = ("data", "model", "optimizer", "scheduler", "callbacks", "logger", "trainer", "paths")


def print_config_tree(cfg: DictConfig, save_to: str | Path | None = None) -> None:
    """Rich tree of the config, main groups first; also written to `save_to` as plain text."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in FIRST if k in cfg] + [k for k in cfg if k not in FIRST]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        with open(save_to, "w") as f:
            rich.print(tree, file=f)
